/* io/lora.c on files written here: the merge is W + scale * (alpha / r) B A
 * (checked element by element against a direct sum, with and without an
 * alpha, under both naming styles and both prefixes); weights the file does
 * not name are left alone; the model check catches a LoRA for another model
 * (a missing weight, another shape); and every malformed file is one error
 * naming the file and tensor. (tests/test_pipeline_matches_diffusers.c checks
 * the merged model against diffusers' load_lora_weights.) */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include "core/error.h"
#include "io/lora.h"
#include "io/safetensors.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define OUT 3
#define IN 5
#define RANK 2

static char dir[64];

static tensor matrix(float *data, int64_t rows, int64_t cols)
{
    tensor t = cols ? tensor_make_2d(DTYPE_F32, DEVICE_CPU, rows, cols) : tensor_make(DTYPE_F32, DEVICE_CPU, 1, &rows);
    t.data = data;
    return t;
}

/* Writes `count` tensors to dir/name and returns the path. */
static const char *write_file(const char *name, const char *const *names, const tensor *tensors, int count)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    CHECK_MSG(safetensors_write(path, names, tensors, count) == 0, "%s", error_message());
    return path;
}

static float down[RANK * IN], up[OUT * RANK], alpha_value[1] = {6.0f};

/* w after the merge, against w0 + factor * up x down computed here. */
static void check_merge(const char *what, const char *path, double scale, double factor)
{
    lora_set *l = NULL;
    CHECK_MSG(lora_open(&l, path, scale) == 0, "%s: %s", what, error_message());
    if (!l) return;
    float w[OUT * IN], other[OUT * IN];
    for (int i = 0; i < OUT * IN; i++) w[i] = other[i] = 0.1f * (float)i;
    CHECK_MSG(lora_apply(l, "blocks.0.attn.to_q.weight", w, OUT, IN) == 0, "%s: %s", what, error_message());
    CHECK_MSG(lora_apply(l, "blocks.0.attn.to_k.weight", other, OUT, IN) == 0, "%s", error_message());
    double worst = 0;
    for (int o = 0; o < OUT; o++)
        for (int i = 0; i < IN; i++) {
            double sum = 0;
            for (int r = 0; r < RANK; r++) sum += (double)up[o * RANK + r] * down[r * IN + i];
            double want = 0.1 * (o * IN + i) + factor * sum;
            worst = fmax(worst, fabs(w[o * IN + i] - want));
        }
    int untouched = 1;
    for (int i = 0; i < OUT * IN; i++) untouched &= other[i] == 0.1f * (float)i;
    printf("  %-40s merge max |err| %.3g, other weight untouched: %s\n", what, worst, untouched ? "yes" : "no");
    CHECK_MSG(worst <= 1e-5, "%s: the merge is off by %.3g", what, worst);
    CHECK_MSG(untouched, "%s: a weight the LoRA does not name changed", what);
    CHECK_MSG(lora_count(l) == 1, "%s: %d pairs", what, lora_count(l));
    lora_close(l);
}

static void check_refusal(const char *what, const char *const *names, const tensor *tensors, int count,
                          const char *phrase)
{
    const char *path = write_file("bad.safetensors", names, tensors, count);
    lora_set *l = NULL;
    int rc = lora_open(&l, path, 1.0);
    printf("  %-40s -> %s\n", what, error_message());
    CHECK_MSG(rc == -1 && !l && strstr(error_message(), phrase) && strstr(error_message(), "bad.safetensors"),
              "%s: expected an error naming \"%s\" and the file: %d %s", what, phrase, rc, error_message());
    lora_close(l);
}

int main(void)
{
    strcpy(dir, "/tmp/moedit_lora_XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    for (int i = 0; i < RANK * IN; i++) down[i] = 0.3f * (float)(i % 7) - 0.8f;
    for (int i = 0; i < OUT * RANK; i++) up[i] = 0.25f * (float)(i % 5) - 0.5f;
    tensor a = matrix(down, RANK, IN), b = matrix(up, OUT, RANK), alpha = matrix(alpha_value, 1, 0);

    const char *peft[] = {"transformer.blocks.0.attn.to_q.lora_A.weight", "transformer.blocks.0.attn.to_q.lora_B.weight"};
    check_merge("diffusers names, scale 0.5", write_file("peft.safetensors", peft, (tensor[]){a, b}, 2), 0.5, 0.5);
    const char *kohya[] = {"diffusion_model.blocks.0.attn.to_q.lora_down.weight",
                           "diffusion_model.blocks.0.attn.to_q.lora_up.weight", "diffusion_model.blocks.0.attn.to_q.alpha"};
    check_merge("kohya names, alpha 6 of rank 2, scale 1", write_file("kohya.safetensors", kohya, (tensor[]){a, b, alpha}, 3),
                1.0, 3.0);
    const char *bare[] = {"blocks.0.attn.to_q.lora_A.weight", "blocks.0.attn.to_q.lora_B.weight"};
    check_merge("no prefix, scale -1", write_file("bare.safetensors", bare, (tensor[]){a, b}, 2), -1.0, -1.0);

    /* The model check: the weight must exist, of the factors' shape. */
    float w0[OUT * IN] = {0}, w1[IN * OUT] = {0};
    const char *model_names[] = {"blocks.0.attn.to_q.weight"};
    const char *renamed[] = {"blocks.0.attn.to_k.weight"};
    lora_set *l = NULL;
    safetensors *model = NULL, *other = NULL, *missing = NULL; /* write_file's path is reused: open each at once */
    CHECK(safetensors_open(&model, write_file("model.safetensors", model_names, (tensor[]){matrix(w0, OUT, IN)}, 1)) == 0);
    CHECK(safetensors_open(&other, write_file("other.safetensors", model_names, (tensor[]){matrix(w1, IN, OUT)}, 1)) == 0);
    CHECK(safetensors_open(&missing, write_file("renamed.safetensors", renamed, (tensor[]){matrix(w0, OUT, IN)}, 1)) == 0);
    CHECK(lora_open(&l, write_file("peft.safetensors", peft, (tensor[]){a, b}, 2), 1.0) == 0);
    if (l && model && other && missing) {
        CHECK_MSG(lora_check_model(l, model, "the transformer") == 0, "%s", error_message());
        CHECK(lora_check_model(l, other, "the transformer") == -1 && strstr(error_message(), "not that shape"));
        printf("  %-40s -> %s\n", "another shape", error_message());
        CHECK(lora_check_model(l, missing, "the transformer") == -1 && strstr(error_message(), "does not have"));
        printf("  %-40s -> %s\n", "a weight the model lacks", error_message());
        float small[2 * IN];
        CHECK(lora_apply(l, "blocks.0.attn.to_q.weight", small, 2, IN) == -1 && strstr(error_message(), "[2, 5]"));
        printf("  %-40s -> %s\n", "apply to another shape", error_message());
    }
    lora_close(l);
    safetensors_close(model), safetensors_close(other), safetensors_close(missing);

    /* Malformed files. */
    float two[2] = {1, 2}, wide[OUT * 3];
    const char *stray[] = {"transformer.blocks.0.attn.to_q.weight"};
    check_refusal("not a LoRA factor", stray, (tensor[]){a}, 1, "is not a LoRA factor");
    check_refusal("down without up", peft, (tensor[]){a}, 1, "no lora_B");
    check_refusal("up without down", peft + 1, (tensor[]){b}, 1, "no lora_A");
    check_refusal("ranks differ", peft, (tensor[]){a, matrix(wide, OUT, 3)}, 2, "one rank");
    const char *with_alpha[] = {peft[0], peft[1], "transformer.blocks.0.attn.to_q.alpha"};
    check_refusal("alpha of two values", with_alpha, (tensor[]){a, b, matrix(two, 2, 0)}, 3, "not one");
    const char *twice[] = {peft[0], "transformer.blocks.0.attn.to_q.lora_down.weight", peft[1]};
    check_refusal("the same factor twice", twice, (tensor[]){a, a, b}, 3, "same factor");
    const char *vector_factor[] = {peft[0], peft[1]};
    check_refusal("a vector factor", vector_factor, (tensor[]){matrix(two, 2, 0), b}, 2, "one rank");
    CHECK(lora_open(&l, write_file("peft.safetensors", peft, (tensor[]){a, b}, 2), NAN) == -1 &&
          strstr(error_message(), "not a finite"));
    printf("  %-40s -> %s\n", "scale NaN", error_message());
    CHECK(lora_open(&l, "/nonexistent/lora.safetensors", 1.0) == -1 && strstr(error_message(), "/nonexistent"));
    printf("  %-40s -> %s\n", "missing file", error_message());
    const char *files[] = {"peft", "kohya", "bare", "model", "other", "renamed", "bad"};
    char path[160];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
    return test_finish("test_lora");
}
