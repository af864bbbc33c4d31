/* LoRA adapters merged into weights as they load; see lora.h. */
#include "io/lora.h"

#include "backend/cpu/cpu_gemm.h"
#include "core/error.h"
#include "io/safetensors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct lora_pair {
    char *base;                             /* the weight's name without ".weight" */
    const char *down, *up, *alpha;          /* tensor names in the file (A, B, alpha) */
    int64_t rank;
} lora_pair;

struct lora_set {
    safetensors *st;
    char *path;
    double scale;
    lora_pair *pairs;
    int count;
};

static const char *const prefixes[] = {"transformer.", "diffusion_model."};
static const struct {
    const char *suffix;
    int role; /* 0: A (down), 1: B (up), 2: alpha */
} suffixes[] = {{".lora_A.weight", 0}, {".lora_down.weight", 0}, {".lora_B.weight", 1}, {".lora_up.weight", 1},
                {".alpha", 2}};

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

/* The pair of the weight base[0..len), or NULL. */
static lora_pair *find_pair(const lora_set *l, const char *base, size_t len)
{
    for (int i = 0; i < l->count; i++)
        if (strlen(l->pairs[i].base) == len && strncmp(l->pairs[i].base, base, len) == 0) return &l->pairs[i];
    return NULL;
}

/* The pair for base (of length len), added if new; NULL when out of memory. */
static lora_pair *pair_of(lora_set *l, const char *base, size_t len)
{
    lora_pair *found = find_pair(l, base, len);
    if (found) return found;
    lora_pair *grown = realloc(l->pairs, (size_t)(l->count + 1) * sizeof *grown);
    if (!grown) return NULL;
    l->pairs = grown;
    lora_pair *p = &l->pairs[l->count];
    memset(p, 0, sizeof *p);
    p->base = malloc(len + 1);
    if (!p->base) return NULL;
    memcpy(p->base, base, len);
    p->base[len] = '\0';
    l->count++;
    return p;
}

/* Files the tensor `name` under its pair. */
static int add_tensor(lora_set *l, const char *name)
{
    const char *base = name;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (strncmp(base, prefixes[i], strlen(prefixes[i])) == 0) base += strlen(prefixes[i]);
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        if (!ends_with(base, suffixes[i].suffix)) continue;
        lora_pair *p = pair_of(l, base, strlen(base) - strlen(suffixes[i].suffix));
        if (!p) return error_set("LoRA %s: out of memory", l->path);
        const char **slot = suffixes[i].role == 0 ? &p->down : suffixes[i].role == 1 ? &p->up : &p->alpha;
        if (*slot) return error_set("LoRA %s: %s and %s are the same factor of %s", l->path, *slot, name, p->base);
        *slot = name;
        return 0;
    }
    return error_set("LoRA %s: tensor %s is not a LoRA factor (<weight>.lora_A.weight, .lora_B.weight, "
                     ".lora_down.weight, .lora_up.weight or .alpha)",
                     l->path, name);
}

static int check_pair(const lora_set *l, lora_pair *p)
{
    if (!p->down || !p->up)
        return error_set("LoRA %s: %s has %s but no %s", l->path, p->base, p->down ? p->down : p->up,
                         p->down ? "lora_B (up) factor" : "lora_A (down) factor");
    const safetensors_entry *a = safetensors_find(l->st, p->down), *b = safetensors_find(l->st, p->up);
    if (a->ndim != 2 || b->ndim != 2 || a->shape[0] != b->shape[1] || a->shape[0] < 1)
        return error_set("LoRA %s: %s and %s are not [r, in] and [out, r] of one rank r", l->path, p->down, p->up);
    p->rank = a->shape[0];
    if (p->alpha) {
        const safetensors_entry *e = safetensors_find(l->st, p->alpha);
        int64_t numel = 1;
        for (int d = 0; d < e->ndim; d++) numel *= e->shape[d];
        if (numel != 1) return error_set("LoRA %s: %s holds %lld values, not one", l->path, p->alpha, (long long)numel);
    }
    return 0;
}

int lora_open(lora_set **out, const char *path, double scale)
{
    *out = NULL;
    if (!isfinite(scale)) return error_set("LoRA %s: scale %g is not a finite number", path, scale);
    lora_set *l = calloc(1, sizeof *l);
    if (!l || !(l->path = strdup(path))) {
        free(l);
        return error_set("LoRA %s: out of memory", path);
    }
    l->scale = scale;
    int status = safetensors_open(&l->st, path);
    for (int i = 0; status == 0 && i < safetensors_count(l->st); i++)
        status = add_tensor(l, safetensors_entry_at(l->st, i)->name);
    for (int i = 0; status == 0 && i < l->count; i++) status = check_pair(l, &l->pairs[i]);
    if (status == 0 && l->count == 0) status = error_set("LoRA %s: no LoRA factors in the file", path);
    if (status) {
        lora_close(l);
        return -1;
    }
    *out = l;
    return 0;
}

/* The tensor `name` of the file as float32 (malloc'ed), or NULL with an error. */
static float *read_factor(const lora_set *l, const char *name)
{
    const safetensors_entry *e = safetensors_find(l->st, name);
    int64_t numel = 1;
    for (int d = 0; d < e->ndim; d++) numel *= e->shape[d];
    float *data = malloc((size_t)numel * sizeof(float));
    if (!data) {
        error_set("LoRA %s: out of memory reading %s", l->path, name);
        return NULL;
    }
    if (safetensors_read_f32(l->st, name, e->ndim, e->shape, data)) {
        free(data);
        return NULL;
    }
    return data;
}

int lora_apply(lora_set *l, const char *name, float *w, int64_t rows, int64_t cols)
{
    if (!ends_with(name, ".weight")) return 0;
    lora_pair *p = find_pair(l, name, strlen(name) - strlen(".weight"));
    if (!p) return 0;
    const safetensors_entry *a = safetensors_find(l->st, p->down), *b = safetensors_find(l->st, p->up);
    if (cols == 0 || b->shape[0] != rows || a->shape[1] != cols)
        return error_set("LoRA %s: %s is [%lld, %lld] x [%lld, %lld], but %s is [%lld, %lld]", l->path, p->up,
                         (long long)b->shape[0], (long long)b->shape[1], (long long)a->shape[0],
                         (long long)a->shape[1], name, (long long)rows, (long long)cols);
    float *down = read_factor(l, p->down), *up = down ? read_factor(l, p->up) : NULL;
    float *alpha = up && p->alpha ? read_factor(l, p->alpha) : NULL;
    int status = -1;
    if (up && (!p->alpha || alpha)) {
        double factor = l->scale * (p->alpha ? (double)alpha[0] : (double)p->rank) / (double)p->rank;
        /* w += factor * up [rows, r] x down [r, cols], through the CPU backend's
         * product: the same bits for any number of threads (a BLAS's own
         * threads changed them: OpenBLAS, 3072x3072 rank 16, 1 vs 2 threads). */
        cpu_gemm(CblasNoTrans, rows, cols, p->rank, (float)factor, up, p->rank, down, cols, 1.0f, w, cols);
        status = 0;
        /* A huge strength (or factors) would leave inf or NaN weights: a black picture, not an error. */
        for (int64_t i = 0; i < rows * cols && status == 0; i++)
            if (!isfinite(w[i]))
                status = error_set("LoRA %s: at strength %g, %s comes out non-finite after the merge", l->path,
                                   l->scale, name);
    }
    free(down), free(up), free(alpha);
    return status;
}

int lora_check_model(const lora_set *l, const safetensors *model, const char *what)
{
    char name[1024];
    for (int i = 0; i < l->count; i++) {
        const lora_pair *p = &l->pairs[i];
        snprintf(name, sizeof name, "%s.weight", p->base);
        const safetensors_entry *w = safetensors_find(model, name);
        if (!w)
            return error_set("LoRA %s: %s adapts %s, which %s does not have: a LoRA for another model?", l->path,
                             p->down, name, what);
        const safetensors_entry *a = safetensors_find(l->st, p->down), *b = safetensors_find(l->st, p->up);
        if (w->ndim != 2 || w->shape[0] != b->shape[0] || w->shape[1] != a->shape[1])
            return error_set("LoRA %s: %s and %s make [%lld, %lld], but %s's %s is not that shape: a LoRA for "
                             "another model?",
                             l->path, p->up, p->down, (long long)b->shape[0], (long long)a->shape[1], what, name);
    }
    return 0;
}

int lora_count(const lora_set *l) { return l->count; }

void lora_close(lora_set *l)
{
    if (!l) return;
    for (int i = 0; i < l->count; i++) free(l->pairs[i].base);
    free(l->pairs);
    if (l->st) safetensors_close(l->st);
    free(l->path);
    free(l);
}
