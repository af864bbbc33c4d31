/* The CUDA backend computes every backend op like the CPU backend.
 *
 * Each op runs on the same random inputs on both backends (activations
 * rounded to BF16 first, so both start from identical values) and the CUDA
 * result is compared with the CPU's F32 result: data movement bit-exact,
 * elementwise ops and norms within a few BF16 roundings, matrix products,
 * attention and convolutions within 2e-2 of the result's scale (both
 * attention kernels: tensor cores for BF16 and head dims divisible by 16,
 * the plain one otherwise). Shapes are odd
 * on purpose; views start at unaligned rows; combine_rows, attention and
 * linear must give bit-identical results run to run. A table of the errors
 * is printed. Without a GPU the test exits 77 (ctest: skipped). */
#include "backend/backend.h"
#include "backend/cuda/backend_cuda.h"
#include "core/error.h"
#include "core/philox.h"
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

#define SEED 424242u
#define TOL_EXACT 0.0
#define TOL_ELEMENTWISE 8e-3
#define TOL_NORM 1e-2
#define TOL_PRODUCT 2e-2
#define TOL_F32 1e-4

static backend *cpu, *gpu;
static uint64_t next_stream;

typedef enum { ACT, F32, I32 } kind; /* ACT: each backend's activation dtype */

/* The same tensor on both backends. */
typedef struct pair {
    tensor c, g;
} pair;

#define MAX_OWNED 512
static void *owned_cpu[MAX_OWNED], *owned_gpu[MAX_OWNED], *owned_host[MAX_OWNED];
static int count_cpu, count_gpu, count_host;

static void *host_alloc(size_t bytes)
{
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p || count_host == MAX_OWNED) {
        fprintf(stderr, "test_cuda_backend: out of host memory\n");
        exit(2);
    }
    owned_host[count_host++] = p;
    return p;
}

static void release_all(void)
{
    gpu->ops->synchronize(gpu);
    for (int i = 0; i < count_cpu; i++) cpu->ops->free(cpu, owned_cpu[i]);
    for (int i = 0; i < count_gpu; i++) gpu->ops->free(gpu, owned_gpu[i]);
    for (int i = 0; i < count_host; i++) free(owned_host[i]);
    count_cpu = count_gpu = count_host = 0;
}

static tensor_dtype dtype_of(kind k, backend *be) { return k == ACT ? be->dtype : k == F32 ? DTYPE_F32 : DTYPE_I32; }

static tensor storage(backend *be, kind k, int ndim, const int64_t *shape)
{
    tensor t = tensor_make(dtype_of(k, be), be->device, ndim, shape);
    t.data = be->ops->alloc(be, tensor_nbytes(&t));
    if (!t.data) {
        fprintf(stderr, "test_cuda_backend: %s\n", error_message());
        exit(2);
    }
    if (be == cpu)
        owned_cpu[count_cpu++] = t.data;
    else
        owned_gpu[count_gpu++] = t.data;
    return t;
}

static pair pair_nd(kind k, int ndim, const int64_t *shape)
{
    pair p = {storage(cpu, k, ndim, shape), storage(gpu, k, ndim, shape)};
    return p;
}

static pair pair_2d(kind k, int64_t rows, int64_t cols)
{
    int64_t shape[2] = {rows, cols};
    return pair_nd(k, 2, shape);
}

static pair pair_rows(pair p, int64_t first, int64_t count)
{
    pair v = {tensor_row_slice(p.c, first, count), tensor_row_slice(p.g, first, count)};
    return v;
}

static pair none(void)
{
    pair p = {tensor_none(), tensor_none()};
    return p;
}

static void upload(pair p, const float *host)
{
    cpu->ops->upload(cpu, p.c, host);
    gpu->ops->upload(gpu, p.g, host);
}

/* Standard normals times scale (+ offset), rounded to BF16 for activations so
 * both backends hold identical values. */
static float *random_host(int64_t n, float scale, float offset, int round)
{
    float *h = host_alloc((size_t)n * sizeof(float));
    philox_fill_normal(SEED, next_stream++, 0, n, h);
    for (int64_t i = 0; i < n; i++) {
        h[i] = h[i] * scale + offset;
        if (round) h[i] = bf16_to_f32(f32_to_bf16(h[i]));
    }
    return h;
}

static pair randomized(pair p, float scale, float offset)
{
    float *h = random_host(tensor_numel(&p.c), scale, offset, 1);
    upload(p, h);
    return p;
}

static pair random_2d(kind k, int64_t rows, int64_t cols) { return randomized(pair_2d(k, rows, cols), 1.0f, 0.0f); }

static float *fetch(backend *be, tensor t)
{
    float *h = host_alloc((size_t)tensor_numel(&t) * sizeof(float));
    be->ops->synchronize(be);
    be->ops->download(be, h, t);
    return h;
}

/* Max |gpu - cpu| against tolerance * max |cpu|; prints one table row. */
static void compare(const char *op, pair p, double tolerance)
{
    int64_t n = tensor_numel(&p.c);
    const float *want = fetch(cpu, p.c), *got = fetch(gpu, p.g);
    double error = test_max_abs_diff(got, want, n), scale = test_max_abs(want, n);
    double relative = scale > 0 ? error / scale : error;
    printf("  %-44s max |err| %-10.3g scale %-10.3g rel %-10.3g (tol %.0e)\n", op, error, scale, relative, tolerance);
    CHECK_MSG(error <= tolerance * scale, "%s: max |error| %.3g exceeds %.0e * scale %.3g", op, error, tolerance,
              scale);
}

/* The CUDA tensor equals itself computed again: bit-identical. */
static void check_same_bits(const char *op, tensor a, tensor b)
{
    int64_t n = tensor_numel(&a);
    CHECK_MSG(memcmp(fetch(gpu, a), fetch(gpu, b), (size_t)n * sizeof(float)) == 0, "%s: not deterministic", op);
}

/* ---- memory and data movement ---------------------------------------- */

static void test_alloc_upload_download_copy_fill(void)
{
    pair a = random_2d(ACT, 37, 53);
    compare("upload/download BF16 round trip", a, TOL_EXACT);
    pair f = randomized(pair_2d(F32, 11, 13), 3.0f, 0.0f);
    float *raw = random_host(11 * 13, 3.0f, 0.0f, 0);
    upload(f, raw);
    CHECK_MSG(memcmp(fetch(gpu, f.g), raw, 11 * 13 * sizeof(float)) == 0, "F32 tensors travel raw");
    int32_t words[29];
    for (int i = 0; i < 29; i++) words[i] = i * 7919 - 100000;
    pair w = pair_2d(I32, 29, 1);
    upload(w, (const float *)(const void *)words);
    CHECK_MSG(memcmp(fetch(gpu, w.g), words, sizeof words) == 0, "I32 tensors travel as raw words");

    pair b = pair_2d(ACT, 53, 37); /* same numel, other shape */
    cpu->ops->copy(cpu, b.c, a.c);
    gpu->ops->copy(gpu, b.g, a.g);
    compare("copy", b, TOL_EXACT);
    pair v = pair_rows(b, 5, 9);
    cpu->ops->fill(cpu, v.c, -2.5f);
    gpu->ops->fill(gpu, v.g, -2.5f);
    compare("fill (a row view; the rest untouched)", b, TOL_EXACT);

    /* Random weights made on the device are the CPU's numbers rounded to
     * BF16 once: bit for bit what uploading the CPU's would give. A block
     * at an odd offset of a wide matrix crosses Philox blocks of 4. */
    pair r = pair_2d(ACT, 41, 67), uploaded = pair_2d(ACT, 41, 67);
    cpu->ops->fill_uniform(cpu, r.c, 77, 0x123456789abcdefull, 0.25f, 1001, 5, 3);
    gpu->ops->fill_uniform(gpu, r.g, 77, 0x123456789abcdefull, 0.25f, 1001, 5, 3);
    gpu->ops->upload(gpu, uploaded.g, fetch(cpu, r.c));
    CHECK_MSG(memcmp(fetch(gpu, r.g), fetch(gpu, uploaded.g), 41 * 67 * sizeof(float)) == 0,
              "fill_uniform: the GPU's random block differs from the CPU's rounded to BF16");
    compare("fill_uniform (block of a 1001-wide matrix)", r, TOL_ELEMENTWISE);

    void *big = gpu->ops->alloc(gpu, (size_t)64 << 20);
    CHECK(big != NULL);
    gpu->ops->free(gpu, big);
    error_clear();
    CHECK(gpu->ops->alloc(gpu, (size_t)1 << 60) == NULL);
    CHECK_MSG(strstr(error_message(), "out of GPU memory") != NULL, "got: %s", error_message());
    CHECK_MSG(backend_cuda_status(gpu) == 0, "a failed alloc leaves the backend usable: %s", error_message());
}

/* cols = 72 takes the 8-wide BF16 kernels, 67 the element-wise ones. */
static void gather_combine_case(int64_t cols)
{
    enum { ROWS = 41, K = 3, SLOTS = ROWS * K };
    pair x = random_2d(ACT, ROWS, cols);
    int32_t index[SLOTS], positions[SLOTS];
    for (int i = 0; i < SLOTS; i++) index[i] = (i * 17 + i / 3) % ROWS; /* repeats, out of order */
    for (int i = 0; i < SLOTS; i++) positions[i] = (i * 7 + 5) % SLOTS; /* each slot once, rows' slots unordered */
    pair idx = pair_2d(I32, SLOTS, 1), at = pair_2d(I32, ROWS, K);
    upload(idx, (const float *)(const void *)index);
    upload(at, (const float *)(const void *)positions);
    pair gathered = pair_2d(ACT, SLOTS, cols);
    cpu->ops->gather_rows(cpu, gathered.c, x.c, idx.c);
    gpu->ops->gather_rows(gpu, gathered.g, x.g, idx.g);
    compare(cols % 8 ? "gather_rows" : "gather_rows (8-wide)", gathered, TOL_EXACT);

    pair weight = randomized(pair_2d(F32, SLOTS, 1), 0.3f, 0.5f);
    pair src = random_2d(ACT, SLOTS, cols);
    float *y0 = random_host(ROWS * cols, 1.0f, 0.0f, 1);
    pair y = pair_2d(ACT, ROWS, cols), again = pair_2d(ACT, ROWS, cols);
    upload(y, y0);
    upload(again, y0);
    cpu->ops->combine_rows(cpu, y.c, src.c, at.c, weight.c, 0);
    gpu->ops->combine_rows(gpu, y.g, src.g, at.g, weight.g, 0);
    gpu->ops->combine_rows(gpu, again.g, src.g, at.g, weight.g, 0);
    compare(cols % 8 ? "combine_rows (K = 3)" : "combine_rows (8-wide)", y, TOL_ELEMENTWISE);
    check_same_bits("combine_rows", y.g, again.g);
    /* Holding only slots [40, 80): another rank adds the rest. */
    pair held = {tensor_row_slice(src.c, 40, 40), tensor_row_slice(src.g, 40, 40)};
    cpu->ops->combine_rows(cpu, y.c, held.c, at.c, weight.c, 40);
    gpu->ops->combine_rows(gpu, y.g, held.g, at.g, weight.g, 40);
    compare("combine_rows (slots 40..79 held)", y, TOL_ELEMENTWISE);
}

static void test_gather_and_combine_rows(void)
{
    gather_combine_case(67);
    gather_combine_case(72);
}

/* Both backends' words equal (I32 tensors, or F32 results meant bit for bit). */
static void check_equal_words(const char *op, pair p)
{
    int64_t n = tensor_numel(&p.c);
    int same = memcmp(fetch(cpu, p.c), fetch(gpu, p.g), (size_t)n * 4) == 0;
    printf("  %-44s %s\n", op, same ? "identical" : "DIFFERENT");
    CHECK_MSG(same, "%s: the CUDA result differs from the CPU's", op);
}

/* The gate on identical BF16 logits (few experts: the rank method, many: the
 * passes; `forced`: replayed experts), then the dispatch of the CPU's experts
 * on both, by expert or through a bucket map; rows spanning several 256-slot
 * blocks of the CUDA dispatch, the last one partial. */
static void moe_case(int64_t rows, int n, int k, int forced, int mapped)
{
    char name[96];
    pair logits = random_2d(ACT, rows, n);
    pair experts = pair_2d(I32, rows, k), weights = pair_2d(F32, rows, k);
    int32_t *given = host_alloc((size_t)(rows * k) * sizeof *given);
    for (int64_t i = 0; i < rows; i++)
        for (int j = 0; j < k; j++) given[i * k + j] = (int32_t)((i * 7 + j * (n / k + 1)) % n);
    if (forced) upload(experts, (const float *)(const void *)given);
    cpu->ops->moe_route(cpu, experts.c, weights.c, logits.c, forced);
    gpu->ops->moe_route(gpu, experts.g, weights.g, logits.g, forced);
    snprintf(name, sizeof name, "moe_route %lld x %d top %d%s experts", (long long)rows, n, k, forced ? " (forced)" : "");
    check_equal_words(name, experts);
    snprintf(name, sizeof name, "moe_route %lld x %d top %d%s weights", (long long)rows, n, k, forced ? " (forced)" : "");
    compare(name, weights, 1e-6);

    int32_t map[64];
    int buckets = mapped ? n + 3 : n; /* a map may leave buckets empty */
    for (int e = 0; e < n; e++) map[e] = (e * 5 + 2) % (n + 3);
    pair bucket = mapped ? pair_2d(I32, n, 1) : none();
    if (mapped) upload(bucket, (const float *)(const void *)map);
    upload(experts, fetch(cpu, experts.c));
    upload(weights, fetch(cpu, weights.c));
    pair slot_rows = pair_2d(I32, rows * k, 1), slot_weights = pair_2d(F32, rows * k, 1);
    pair positions = pair_2d(I32, rows, k), offsets = pair_2d(I32, buckets + 1, 1);
    cpu->ops->moe_dispatch(cpu, slot_rows.c, slot_weights.c, positions.c, offsets.c, experts.c, weights.c, bucket.c,
                           buckets);
    gpu->ops->moe_dispatch(gpu, slot_rows.g, slot_weights.g, positions.g, offsets.g, experts.g, weights.g, bucket.g,
                           buckets);
    snprintf(name, sizeof name, "moe_dispatch %lld slots, %d buckets%s", (long long)(rows * k), buckets,
             mapped ? " (mapped)" : "");
    check_equal_words(name, offsets);
    check_equal_words(name, slot_rows);
    check_equal_words(name, slot_weights);
    check_equal_words(name, positions);
}

static void test_moe_route_and_dispatch(void)
{
    moe_case(3001, 4, 2, 0, 0);
    moe_case(3001, 4, 2, 1, 0);
    moe_case(700, 20, 3, 0, 0);
    moe_case(1000, 8, 2, 0, 1);
}

/* ---- matrix products ------------------------------------------------- */

static void linear_case(const char *name, kind k, int64_t m, int64_t kk, int64_t n, int with_bias, double tolerance)
{
    pair x = randomized(pair_2d(k, m, kk), 1.0f, 0.0f);
    pair w = randomized(pair_2d(k, n, kk), 1.0f / (float)kk, 0.0f);
    pair b = with_bias ? randomized(pair_2d(k, 1, n), 0.5f, 0.0f) : none();
    pair y = pair_2d(k, m, n), again = pair_2d(k, m, n);
    cpu->ops->linear(cpu, y.c, x.c, w.c, b.c);
    gpu->ops->fill(gpu, y.g, 1e30f); /* overwritten, never accumulated into */
    gpu->ops->linear(gpu, y.g, x.g, w.g, b.g);
    gpu->ops->linear(gpu, again.g, x.g, w.g, b.g);
    compare(name, y, tolerance);
    check_same_bits(name, y.g, again.g);
}

static void test_linear(void)
{
    linear_case("linear 37x70 -> 53, bias", ACT, 37, 70, 53, 1, TOL_PRODUCT);
    linear_case("linear 37x70 -> 53, no bias", ACT, 37, 70, 53, 0, TOL_PRODUCT);
    linear_case("linear 300x512 -> 384, bias", ACT, 300, 512, 384, 1, TOL_PRODUCT);
    linear_case("linear 1x256 -> 1536 (modulation), bias", ACT, 1, 256, 1536, 1, TOL_PRODUCT);
    linear_case("linear F32 tensors 33x65 -> 17, bias", F32, 33, 65, 17, 1, TOL_F32);

    /* A view whose rows start at an odd element offset (2-byte aligned). */
    pair big = random_2d(ACT, 38, 67);
    pair w = randomized(pair_2d(ACT, 45, 67), 0.1f, 0.0f);
    pair b = randomized(pair_2d(ACT, 1, 45), 0.5f, 0.0f);
    pair y = pair_2d(ACT, 37, 45);
    pair x = pair_rows(big, 1, 37);
    cpu->ops->linear(cpu, y.c, x.c, w.c, b.c);
    gpu->ops->linear(gpu, y.g, x.g, w.g, b.g);
    compare("linear on an unaligned row view, K=67", y, TOL_PRODUCT);
}

#define MAX_GROUPS 40

/* linear_grouped over `groups` row ranges (offsets[groups + 1]) of x[rows, in]. */
static void grouped_case(const char *name, int groups, const int64_t *offsets, int64_t in, int64_t out)
{
    int64_t rows = offsets[groups];
    pair x = random_2d(ACT, rows, in);
    tensor wc[MAX_GROUPS], wg[MAX_GROUPS];
    for (int g = 0; g < groups; g++) {
        pair w = randomized(pair_2d(ACT, out, in), 0.1f, 0.0f);
        wc[g] = w.c;
        wg[g] = w.g;
    }
    pair y = pair_2d(ACT, rows, out);
    cpu->ops->linear_grouped(cpu, y.c, x.c, wc, offsets, groups);
    gpu->ops->linear_grouped(gpu, y.g, x.g, wg, offsets, groups);
    compare(name, y, TOL_PRODUCT);
}

static void test_linear_grouped(void)
{
    int64_t few[6] = {0, 30, 30, 61, 62, 97}; /* an empty group and a single row */
    grouped_case("linear_grouped (empty and 1-row groups)", 5, few, 96, 80);
    /* Many groups of a few hundred rows, as a layer's experts get them. */
    int64_t many[10];
    for (int g = 0; g <= 9; g++) many[g] = (int64_t)4000 * g / 9;
    grouped_case("linear_grouped (9 groups of ~444 rows)", 9, many, 256, 256);
    /* Many small groups (0 to 39 rows). */
    int64_t lots[41];
    for (int g = 0; g <= 40; g++) lots[g] = (int64_t)g * (g - 1) / 2;
    grouped_case("linear_grouped (40 groups of 0-39 rows)", 40, lots, 64, 48);
    /* Row counts that share one product cache entry (M rounded up to 3072),
     * the largest first: the later products reuse its algorithm at fewer rows. */
    int64_t bucketed[5] = {0, 3050, 5950, 8951, 9012};
    grouped_case("linear_grouped (3050, 2900, 3001, 61 rows: one bucket of M)", 4, bucketed, 256, 384);
}

/* ---- elementwise ----------------------------------------------------- */

/* cols = 136 takes the kernels' 8-wide BF16 paths, cols = 131 the scalar ones. */
static void elementwise_case(int64_t rows, int64_t cols)
{
    pair a = random_2d(ACT, rows, cols), b = random_2d(ACT, rows, cols), y = pair_2d(ACT, rows, cols);
    cpu->ops->add(cpu, y.c, a.c, b.c);
    gpu->ops->add(gpu, y.g, a.g, b.g);
    compare(cols % 8 ? "add" : "add (8-wide)", y, TOL_ELEMENTWISE);
    cpu->ops->silu(cpu, y.c, a.c);
    gpu->ops->silu(gpu, y.g, a.g);
    compare("silu", y, TOL_ELEMENTWISE);
    cpu->ops->swiglu(cpu, y.c, a.c, b.c);
    gpu->ops->swiglu(gpu, y.g, a.g, b.g);
    compare(cols % 8 ? "swiglu" : "swiglu (8-wide)", y, TOL_ELEMENTWISE);
    cpu->ops->swiglu(cpu, a.c, a.c, b.c);
    gpu->ops->swiglu(gpu, a.g, a.g, b.g);
    compare(cols % 8 ? "swiglu in place (gate = y)" : "swiglu in place (8-wide)", a, TOL_ELEMENTWISE);

    pair x = random_2d(ACT, rows, cols), gate = random_2d(ACT, 1, cols), scale = random_2d(ACT, rows, 1);
    cpu->ops->gated_residual(cpu, x.c, gate.c, b.c);
    gpu->ops->gated_residual(gpu, x.g, gate.g, b.g);
    compare(cols % 8 ? "gated_residual" : "gated_residual (8-wide)", x, TOL_ELEMENTWISE);
    cpu->ops->scale_rows(cpu, x.c, scale.c);
    gpu->ops->scale_rows(gpu, x.g, scale.g);
    compare("scale_rows (BF16 scales)", x, TOL_ELEMENTWISE);
    pair f32_scale = randomized(pair_2d(F32, rows, 1), 1.0f, 0.0f);
    cpu->ops->scale_rows(cpu, x.c, f32_scale.c);
    gpu->ops->scale_rows(gpu, x.g, f32_scale.g);
    compare("scale_rows (F32 scales)", x, TOL_ELEMENTWISE);
}

static void test_elementwise(void)
{
    elementwise_case(33, 131);
    elementwise_case(33, 136);
}

/* cols = 1536 takes the 8-wide BF16 kernels, 1530 the element-wise ones. */
static void norms_case(int64_t rows, int64_t cols)
{
    pair x = randomized(pair_2d(ACT, rows, cols), 2.0f, 3.0f); /* a large mean must not cancel */
    pair m = randomized(pair_2d(ACT, 2, cols), 0.3f, 0.0f);
    pair y = pair_2d(ACT, rows, cols);
    cpu->ops->layer_norm_modulate(cpu, y.c, x.c, pair_rows(m, 0, 1).c, pair_rows(m, 1, 1).c, 1e-6f);
    gpu->ops->layer_norm_modulate(gpu, y.g, x.g, pair_rows(m, 0, 1).g, pair_rows(m, 1, 1).g, 1e-6f);
    compare(cols % 8 ? "layer_norm_modulate" : "layer_norm_modulate (8-wide)", y, TOL_NORM);
    cpu->ops->layer_norm_modulate(cpu, y.c, x.c, tensor_none(), tensor_none(), 1e-6f);
    gpu->ops->layer_norm_modulate(gpu, y.g, x.g, tensor_none(), tensor_none(), 1e-6f);
    compare("layer_norm_modulate, no shift/scale", y, TOL_NORM);
    pair small = random_2d(ACT, 7, 40), small_y = pair_2d(ACT, 7, 40);
    cpu->ops->layer_norm_modulate(cpu, small_y.c, small.c, tensor_none(), tensor_none(), 1e-6f);
    gpu->ops->layer_norm_modulate(gpu, small_y.g, small.g, tensor_none(), tensor_none(), 1e-6f);
    compare("layer_norm_modulate, C=40", small_y, TOL_NORM);

    pair weight = randomized(pair_2d(ACT, 1, cols), 0.2f, 1.0f);
    pair sums = pair_2d(F32, rows, 1), split = pair_2d(ACT, rows, cols);
    cpu->ops->row_sum_squares(cpu, sums.c, x.c);
    gpu->ops->row_sum_squares(gpu, sums.g, x.g);
    compare(cols % 8 ? "row_sum_squares (F32)" : "row_sum_squares (8-wide)", sums, TOL_F32);
    cpu->ops->rms_norm_with_sums(cpu, split.c, x.c, sums.c, 2 * cols, weight.c, 1e-5f);
    gpu->ops->rms_norm_with_sums(gpu, split.g, x.g, sums.g, 2 * cols, weight.g, 1e-5f);
    compare(cols % 8 ? "rms_norm_with_sums (count 2C)" : "rms_norm_with_sums (8-wide)", split, TOL_NORM);
    cpu->ops->rms_norm(cpu, x.c, x.c, weight.c, 1e-5f);
    gpu->ops->rms_norm(gpu, x.g, x.g, weight.g, 1e-5f);
    compare(cols % 8 ? "rms_norm in place" : "rms_norm in place (8-wide)", x, TOL_NORM);
}

static void test_norms(void)
{
    norms_case(29, 1536);
    norms_case(29, 1530);
}

static void split_and_merge_case(int64_t m, int64_t c, int parts)
{
    pair x = random_2d(ACT, m, c), narrow = pair_2d(ACT, parts * m, c / parts), back = pair_2d(ACT, m, c);
    char name[64];
    cpu->ops->split_columns(cpu, narrow.c, x.c, parts);
    gpu->ops->split_columns(gpu, narrow.g, x.g, parts);
    snprintf(name, sizeof name, "split_columns %lldx%lld in %d", (long long)m, (long long)c, parts);
    compare(name, narrow, TOL_EXACT);
    cpu->ops->merge_columns(cpu, back.c, narrow.c, parts);
    gpu->ops->merge_columns(gpu, back.g, narrow.g, parts);
    snprintf(name, sizeof name, "merge_columns %lldx%lld in %d", (long long)m, (long long)c, parts);
    compare(name, back, TOL_EXACT);
}

/* Column blocks a multiple of 8 wide take the 16-byte path; 20 wide does not. */
static void test_split_and_merge_columns(void)
{
    split_and_merge_case(19, 96, 3);
    split_and_merge_case(300, 2560, 2);
    split_and_merge_case(19, 60, 3);
}

/* Heads and rope widths that are multiples of 8 take the 16-byte kernel,
 * others the one-pair kernel; the padded rows after S stay as they are. */
static void rope_case(int S, int H, int D, int ROPE)
{
    pair x = random_2d(ACT, S + 4, H * D);
    float *table = host_alloc((size_t)(S * ROPE) * sizeof(float));
    for (int i = 0; i < S; i++)
        for (int p = 0; p < ROPE / 2; p++) {
            double angle = i * pow(10000.0, -2.0 * p / ROPE);
            table[i * ROPE + 2 * p] = (float)cos(angle);
            table[i * ROPE + 2 * p + 1] = (float)sin(angle);
        }
    pair cos_sin = pair_2d(F32, S, ROPE);
    upload(cos_sin, table);
    pair rows = pair_rows(x, 0, S);
    cpu->ops->rope(cpu, rows.c, cos_sin.c, H, ROPE);
    gpu->ops->rope(gpu, rows.g, cos_sin.g, H, ROPE);
    char name[80];
    snprintf(name, sizeof name, "rope (rope_dim %d of head dim %d)", ROPE, D);
    compare(name, x, TOL_ELEMENTWISE);
    /* The fused q/k norm and rotation (GPU: one pass, rounded once). */
    pair weight = randomized(pair_2d(F32, H * D, 1), 0.5f, 1.0f);
    cpu->ops->rms_norm_rope(cpu, rows.c, weight.c, 1e-5f, cos_sin.c, H, ROPE);
    gpu->ops->rms_norm_rope(gpu, rows.g, weight.g, 1e-5f, cos_sin.g, H, ROPE);
    snprintf(name, sizeof name, "rms_norm_rope (rope_dim %d of head dim %d)", ROPE, D);
    compare(name, x, TOL_ELEMENTWISE);
}

static void test_rope(void)
{
    rope_case(45, 3, 64, 48);
    rope_case(45, 3, 12, 6);
    rope_case(45, 2, 128, 128);
}

/* ---- attention ------------------------------------------------------- */

static void attention_typed(kind dtype, int64_t sq, int64_t sk, int heads, int d, int causal)
{
    char name[96];
    pair q = randomized(pair_2d(dtype, sq, heads * d), 1.0f, 0.0f);
    pair k = randomized(pair_2d(dtype, sk, heads * d), 1.0f, 0.0f);
    pair v = randomized(pair_2d(dtype, sk, heads * d), 1.0f, 0.0f);
    pair out = pair_2d(dtype, sq, heads * d), again = pair_2d(dtype, sq, heads * d);
    if (causal) {
        cpu->ops->attention_causal(cpu, out.c, q.c, k.c, v.c, heads);
        gpu->ops->attention_causal(gpu, out.g, q.g, k.g, v.g, heads);
        gpu->ops->attention_causal(gpu, again.g, q.g, k.g, v.g, heads);
        snprintf(name, sizeof name, "attention_causal S=%lld H=%d D=%d%s", (long long)sq, heads, d,
                 dtype == F32 ? " F32" : "");
        compare(name, out, TOL_PRODUCT);
    } else {
        pair lse = pair_2d(F32, heads, sq);
        cpu->ops->attention(cpu, out.c, lse.c, q.c, k.c, v.c, heads);
        gpu->ops->attention(gpu, out.g, lse.g, q.g, k.g, v.g, heads);
        gpu->ops->attention(gpu, again.g, tensor_none(), q.g, k.g, v.g, heads);
        snprintf(name, sizeof name, "attention Sq=%lld Sk=%lld H=%d D=%d%s", (long long)sq, (long long)sk, heads, d,
                 dtype == F32 ? " F32" : "");
        compare(name, out, TOL_PRODUCT);
        snprintf(name, sizeof name, "  its lse [H, Sq]");
        compare(name, lse, 1e-3);
    }
    check_same_bits("attention", out.g, again.g);
}

static void attention_case(int64_t sq, int64_t sk, int heads, int d, int causal)
{
    attention_typed(ACT, sq, sk, heads, d, causal);
}

static void test_attention_merge(void)
{
    enum { SQ = 37, H = 3, D = 64, SK = 50 };
    pair q = random_2d(ACT, SQ, H * D), k = random_2d(ACT, 2 * SK, H * D), v = random_2d(ACT, 2 * SK, H * D);
    pair out = pair_2d(ACT, SQ, H * D), part = pair_2d(ACT, SQ, H * D);
    pair lse = pair_2d(F32, H, SQ), part_lse = pair_2d(F32, H, SQ);
    pair k0 = pair_rows(k, 0, SK), v0 = pair_rows(v, 0, SK), k1 = pair_rows(k, SK, SK), v1 = pair_rows(v, SK, SK);
    cpu->ops->attention(cpu, out.c, lse.c, q.c, k0.c, v0.c, H);
    cpu->ops->attention(cpu, part.c, part_lse.c, q.c, k1.c, v1.c, H);
    cpu->ops->attention_merge(cpu, out.c, lse.c, part.c, part_lse.c, H);
    gpu->ops->attention(gpu, out.g, lse.g, q.g, k0.g, v0.g, H);
    gpu->ops->attention(gpu, part.g, part_lse.g, q.g, k1.g, v1.g, H);
    gpu->ops->attention_merge(gpu, out.g, lse.g, part.g, part_lse.g, H);
    compare("attention_merge of two key halves", out, TOL_PRODUCT);
    compare("  its merged lse", lse, 1e-3);
    /* The merge of the halves equals attention over all keys. */
    pair whole = pair_2d(ACT, SQ, H * D);
    gpu->ops->attention(gpu, whole.g, tensor_none(), q.g, k.g, v.g, H);
    float *merged = fetch(gpu, out.g), *direct = fetch(gpu, whole.g);
    double diff = test_max_abs_diff(merged, direct, SQ * H * D), scale = test_max_abs(direct, SQ * H * D);
    printf("  %-44s max |err| %-10.3g scale %-10.3g\n", "  merged halves vs attention over all keys", diff, scale);
    CHECK_MSG(diff <= TOL_PRODUCT * scale, "merged halves differ from whole attention by %.3g", diff);
}

static void test_attention(void)
{
    attention_case(77, 93, 3, 32, 0);
    attention_case(64, 40, 2, 64, 0);
    attention_case(130, 257, 2, 128, 0);
    attention_case(50, 61, 2, 80, 0);
    attention_case(1000, 1000, 4, 128, 0);
    attention_case(33, 200, 5, 48, 0);
    /* Head dims over 128 (the VAE's single 512-wide head): the GEMM path,
     * with more queries than one chunk holds at this key count. */
    attention_case(300, 257, 1, 512, 0);
    attention_case(70, 90, 2, 160, 0);
    attention_case(129, 129, 1, 256, 1);
    attention_typed(F32, 45, 77, 1, 192, 0);
    attention_case(4200, 300, 1, 256, 0); /* two chunks of queries */
    attention_case(4200, 4200, 2, 160, 1);
    attention_case(66, 129, 2, 96, 0);
    attention_case(70, 70, 2, 64, 1);
    attention_case(129, 129, 3, 128, 1);
    attention_case(200, 200, 1, 16, 1);
    /* The plain kernel: a head dim that is not a multiple of 16, and F32 tensors. */
    attention_case(45, 70, 3, 40, 0);
    attention_case(60, 60, 2, 40, 1);
    attention_typed(F32, 50, 77, 2, 64, 0);
    attention_typed(F32, 65, 65, 2, 32, 1);
}

/* ---- image ops ------------------------------------------------------- */

static void conv_case(const char *name, int64_t cin, int64_t h, int64_t w, int64_t cout, int kernel, int stride,
                      const int pad[4], int with_bias)
{
    int64_t ho = (h + pad[0] + pad[1] - kernel) / stride + 1, wo = (w + pad[2] + pad[3] - kernel) / stride + 1;
    int64_t xs[3] = {cin, h, w}, ys[3] = {cout, ho, wo};
    pair x = randomized(pair_nd(ACT, 3, xs), 1.0f, 0.0f);
    pair wt = randomized(pair_2d(ACT, cout, cin * kernel * kernel), 0.2f, 0.0f);
    pair b = with_bias ? randomized(pair_2d(ACT, 1, cout), 0.5f, 0.0f) : none();
    pair y = pair_nd(ACT, 3, ys);
    cpu->ops->conv2d(cpu, y.c, x.c, wt.c, b.c, kernel, stride, pad);
    gpu->ops->conv2d(gpu, y.g, x.g, wt.g, b.g, kernel, stride, pad);
    compare(name, y, TOL_PRODUCT);
}

static void test_conv2d(void)
{
    const int same[4] = {1, 1, 1, 1}, down[4] = {0, 1, 0, 1}, none_pad[4] = {0, 0, 0, 0}, halo[4] = {0, 0, 1, 1};
    conv_case("conv2d 3x3 pad 1, bias", 5, 13, 11, 7, 3, 1, same, 1);
    conv_case("conv2d 3x3 stride 2 pad (0,1,0,1)", 6, 12, 10, 9, 3, 2, down, 1);
    conv_case("conv2d 1x1, no bias", 24, 9, 17, 16, 1, 1, none_pad, 0);
    conv_case("conv2d 3x3 halo rows (pad 0,0,1,1)", 8, 10, 12, 8, 3, 1, halo, 1);
    conv_case("conv2d 3x3 64->64 on 64x64", 64, 64, 64, 64, 3, 1, same, 1);
}

static void test_group_norm_and_upsample(void)
{
    enum { C = 12, H = 9, W = 13, GROUPS = 4 };
    int64_t xs[3] = {C, H, W}, ys[3] = {C, 2 * H, 2 * W};
    pair x = randomized(pair_nd(ACT, 3, xs), 1.5f, 0.7f);
    pair stats = pair_2d(F32, GROUPS, 2);
    cpu->ops->group_norm_stats(cpu, stats.c, x.c, GROUPS);
    gpu->ops->group_norm_stats(gpu, stats.g, x.g, GROUPS);
    compare("group_norm_stats (F32)", stats, TOL_F32);

    pair weight = randomized(pair_2d(ACT, 1, C), 0.2f, 1.0f), bias = randomized(pair_2d(ACT, 1, C), 0.2f, 0.0f);
    pair y = pair_nd(ACT, 3, xs);
    for (int silu = 0; silu <= 1; silu++) {
        cpu->ops->group_norm_apply(cpu, y.c, x.c, stats.c, (C / GROUPS) * H * W, weight.c, bias.c, 1e-6f, silu);
        gpu->ops->group_norm_apply(gpu, y.g, x.g, stats.g, (C / GROUPS) * H * W, weight.g, bias.g, 1e-6f, silu);
        compare(silu ? "group_norm_apply + silu" : "group_norm_apply", y, TOL_NORM);
    }

    int64_t big_shape[3] = {64, 96, 96};
    pair big = randomized(pair_nd(ACT, 3, big_shape), 1.0f, 0.2f);
    pair big_stats = pair_2d(F32, 32, 2);
    cpu->ops->group_norm_stats(cpu, big_stats.c, big.c, 32);
    gpu->ops->group_norm_stats(gpu, big_stats.g, big.g, 32);
    compare("group_norm_stats [64, 96, 96], 32 groups", big_stats, TOL_F32);

    pair up = pair_nd(ACT, 3, ys);
    cpu->ops->upsample_nearest2x(cpu, up.c, x.c);
    gpu->ops->upsample_nearest2x(gpu, up.g, x.g);
    compare("upsample_nearest2x", up, TOL_EXACT);

    /* A band of rows pasted between images of other heights (VAE halos):
     * rows 3..7 of x to rows 10..14 of `band`, the rest of `band` as filled. */
    int64_t bs[3] = {C, 2 * H, W};
    pair band = pair_nd(ACT, 3, bs);
    cpu->ops->fill(cpu, band.c, 0.5f);
    gpu->ops->fill(gpu, band.g, 0.5f);
    cpu->ops->copy_rows(cpu, band.c, 10, x.c, 3, 5);
    gpu->ops->copy_rows(gpu, band.g, 10, x.g, 3, 5);
    compare("copy_rows (rows 3..7 to 10..14 of a taller image)", band, TOL_EXACT);

    pair tokens = pair_2d(ACT, H * W, C), wide = randomized(pair_2d(ACT, 37, 1000), 1.0f, 0.0f);
    pair wide_t = pair_2d(ACT, 1000, 37);
    cpu->ops->transpose(cpu, tokens.c, tensor_reshape_2d(x.c, C, H * W));
    gpu->ops->transpose(gpu, tokens.g, tensor_reshape_2d(x.g, C, H * W));
    compare("transpose [12, 117]", tokens, TOL_EXACT);
    cpu->ops->transpose(cpu, wide_t.c, wide.c);
    gpu->ops->transpose(gpu, wide_t.g, wide.g);
    compare("transpose [37, 1000]", wide_t, TOL_EXACT);
}

static void run(void (*test)(void))
{
    test();
    CHECK_MSG(backend_cuda_status(gpu) == 0, "CUDA error: %s", error_message());
    release_all();
}

int main(void)
{
    gpu = backend_cuda_create(0);
    if (!gpu) {
        printf("test_cuda_backend: skipped: %s\n", error_message());
        return 77;
    }
    cpu = backend_cpu_create();
    CHECK(gpu->dtype == DTYPE_BF16 && gpu->device == DEVICE_CUDA);
    printf("CUDA backend against the CPU backend (errors relative to the CPU result's max |x|):\n");
    run(test_alloc_upload_download_copy_fill);
    run(test_gather_and_combine_rows);
    run(test_moe_route_and_dispatch);
    run(test_linear);
    run(test_linear_grouped);
    run(test_elementwise);
    run(test_norms);
    run(test_rope);
    run(test_split_and_merge_columns);
    /* Attention twice: cuDNN's fused SDPA where the build has it (the
     * default), then moedit's own kernels. */
    run(test_attention);
    run(test_attention_merge);
    /* A new backend after the old one was destroyed with its cuDNN handle and
     * plans: they are the backend's own, built again. */
    backend_destroy(gpu);
    gpu = backend_cuda_create(0);
    CHECK_MSG(gpu != NULL, "a second CUDA backend: %s", error_message());
    if (!gpu) return test_finish("test_cuda_backend");
    run(test_attention);
    setenv("MOEDIT_ATTENTION", "moedit", 1);
    run(test_attention);
    run(test_attention_merge);
    unsetenv("MOEDIT_ATTENTION");
    run(test_conv2d);
    run(test_group_norm_and_upsample);
    backend_destroy(gpu);
    backend_destroy(cpu);
    return test_finish("test_cuda_backend");
}
