/* Tests for the backend interface (backend/backend.h) on the CPU backend: every
 * op in backend_ops, on random normals (Philox), against a naive double
 * precision twin written here in plain loops from the formula documented in
 * backend.h. Data movement (upload/download, I32 raw words, copy, fill,
 * gather_rows, upsample) must be bit-exact; arithmetic must agree within
 * TOLERANCE times the reference's largest magnitude. Odd sizes (33, 37, 23...)
 * keep any op from getting by on a multiple of a vector width. */
#include "backend/backend.h"
#include "core/error.h"
#include "core/philox.h"
#include "test_util.h"

#include <stdint.h>
#include <string.h>

#define TOLERANCE 1e-5
#define SEED 20240611u
#define PI 3.14159265358979323846

static backend *be;

/* Everything one test allocates; run() frees it after the test. */
#define MAX_OWNED 256
static void *device_owned[MAX_OWNED], *host_owned[MAX_OWNED];
static int device_count, host_count;
static uint64_t next_stream; /* each random buffer draws from its own Philox stream */

static void *host_alloc(size_t bytes)
{
    void *ptr = calloc(1, bytes ? bytes : 1);
    if (!ptr || host_count == MAX_OWNED) {
        fprintf(stderr, "test_backend_ops: out of host memory\n");
        exit(2);
    }
    host_owned[host_count++] = ptr;
    return ptr;
}

static double *reference(int64_t n) { return host_alloc((size_t)n * sizeof(double)); }

static float *random_floats(int64_t n)
{
    float *host = host_alloc((size_t)n * sizeof(float));
    philox_fill_normal(SEED, next_stream++, 0, n, host);
    return host;
}

/* Device storage for a tensor header, through be->ops->alloc. */
static tensor with_storage(tensor t)
{
    t.data = be->ops->alloc(be, tensor_nbytes(&t));
    if (!t.data || device_count == MAX_OWNED) {
        fprintf(stderr, "test_backend_ops: %s\n", error_message());
        exit(2);
    }
    device_owned[device_count++] = t.data;
    return t;
}

static tensor matrix(int64_t rows, int64_t cols)
{
    return with_storage(tensor_make_2d(DTYPE_F32, be->device, rows, cols));
}

static tensor vector(tensor_dtype dtype, int64_t n) { return with_storage(tensor_make(dtype, be->device, 1, &n)); }

static tensor image(int64_t channels, int64_t height, int64_t width)
{
    const int64_t shape[3] = {channels, height, width};
    return with_storage(tensor_make(DTYPE_F32, be->device, 3, shape));
}

static tensor uploaded(tensor t, const float *host)
{
    be->ops->upload(be, t, host);
    return t;
}

/* t filled with fresh standard normals; *host receives the same values. */
static tensor randomize(tensor t, float **host)
{
    *host = random_floats(tensor_numel(&t));
    return uploaded(t, *host);
}

/* An I32 vector holding index[]: upload copies I32 tensors as raw 32-bit
 * words, so the ints travel in a float buffer. */
static tensor index_vector(const int32_t *index, int64_t n)
{
    float *words = host_alloc((size_t)n * sizeof(float));
    memcpy(words, index, (size_t)n * sizeof(int32_t));
    return uploaded(vector(DTYPE_I32, n), words);
}

static float *fetch(tensor t)
{
    float *host = host_alloc(tensor_nbytes(&t));
    be->ops->synchronize(be);
    be->ops->download(be, host, t);
    return host;
}

/* got against the double reference: max |error| <= tolerance * max |want|. */
static void check_close(const char *what, tensor got, const double *want, double tolerance)
{
    int64_t n = tensor_numel(&got);
    const float *have = fetch(got);
    double error = 0, scale = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)have[i] - want[i]);
        if (isnan(d) || d > error) error = d; /* a NaN sticks: it is the worst */
        if (fabs(want[i]) > scale) scale = fabs(want[i]);
    }
    CHECK_MSG(error <= tolerance * scale, "%s: max |error| %.3g exceeds %.0e * scale %.3g", what, error, tolerance,
              scale);
}

static void check_exact(const char *what, tensor got, const void *want)
{
    CHECK_MSG(memcmp(fetch(got), want, tensor_nbytes(&got)) == 0, "%s: not bit-exact", what);
}

/* ---- memory and data movement --------------------------------------- */

static void test_alloc_gives_independent_buffers_that_round_trip_exactly(void)
{
    float *a, *b;
    tensor ta = randomize(matrix(3, 5), &a);
    tensor tb = randomize(matrix(3, 5), &b); /* written after ta: must not touch it */
    check_exact("first buffer", ta, a);
    check_exact("second buffer", tb, b);
#ifndef __SANITIZE_ADDRESS__ /* ASan aborts on absurd sizes instead of returning NULL */
    error_clear();
    CHECK(be->ops->alloc(be, (size_t)1 << 62) == NULL);
    CHECK(error_message()[0] != '\0');
#endif
}

static void test_i32_upload_download_copies_raw_words(void)
{
    /* Patterns a float conversion would corrupt: NaN bit patterns (-1,
     * 0x7f800001), integers above 2^24, the extremes. */
    const int32_t words[] = {0, 1, -1, 16777217, INT32_MAX, INT32_MIN, 0x7f800001, -123456789};
    const int64_t n = sizeof words / sizeof words[0];
    check_exact("I32 round trip", index_vector(words, n), words);
}

static void test_copy_moves_data_between_shapes_of_equal_numel(void)
{
    float *x;
    tensor src = randomize(matrix(4, 6), &x), dst = matrix(3, 8);
    be->ops->copy(be, dst, src);
    check_exact("copy [4, 6] -> [3, 8]", dst, x);
}

static void test_fill_writes_every_element_of_the_view_and_nothing_else(void)
{
    enum { ROWS = 6, C = 5, FIRST = 2, COUNT = 3 };
    float *x;
    tensor t = randomize(matrix(ROWS, C), &x);
    be->ops->fill(be, tensor_row_slice(t, FIRST, COUNT), -2.5f);
    for (int i = FIRST * C; i < (FIRST + COUNT) * C; i++) x[i] = -2.5f;
    check_exact("fill rows [2, 5)", t, x);
}

static void test_gather_rows_copies_indexed_rows_exactly(void)
{
    enum { ROWS = 6, C = 9, N = 8 };
    const int32_t index[N] = {5, 0, 3, 3, 1, 5, 5, 2};
    float *x;
    tensor tx = randomize(matrix(ROWS, C), &x), y = matrix(N, C);
    float *want = host_alloc(N * C * sizeof(float));
    for (int i = 0; i < N; i++) memcpy(want + i * C, x + index[i] * C, C * sizeof(float));
    be->ops->gather_rows(be, y, tx, index_vector(index, N));
    check_exact("gather_rows", y, want);
}

/* x holding the slots [first, first + held): each row adds those of its
 * slots, the others belong to another rank. */
static void combine_case(const char *name, int64_t first, int64_t held)
{
    enum { ROWS = 5, K = 3, N = ROWS * K, C = 9 };
    /* Each row's slots, listed out of order (the op adds them ascending). */
    const int32_t positions[N] = {7, 0, 12, 3, 14, 1, 9, 2, 4, 13, 5, 10, 6, 11, 8};
    float *x, *weight, *y;
    tensor tx = randomize(matrix(held, C), &x), tw = randomize(vector(DTYPE_F32, N), &weight);
    tensor ty = randomize(matrix(ROWS, C), &y);
    double *want = reference(ROWS * C);
    for (int i = 0; i < ROWS * C; i++) want[i] = y[i];
    for (int r = 0; r < ROWS; r++)
        for (int j = 0; j < K; j++) {
            int p = positions[r * K + j];
            if (p < first || p >= first + held) continue;
            for (int c = 0; c < C; c++) want[r * C + c] += (double)weight[p] * x[(p - first) * C + c];
        }
    be->ops->combine_rows(be, ty, tx, tensor_reshape_2d(index_vector(positions, N), ROWS, K), tw, first);
    check_close(name, ty, want, TOLERANCE);
}

static void test_combine_rows_adds_each_rows_slots(void)
{
    combine_case("combine_rows", 0, 15);
    combine_case("combine_rows (slots 5..10 held)", 5, 6);
}

/* The dispatch is a stable counting sort of the (row, j) slots by bucket:
 * offsets bound the buckets, rows ascend within each, and positions invert it. */
static void test_moe_dispatch_sorts_slots_stably(void)
{
    enum { ROWS = 6, K = 2, N = ROWS * K, E = 4, BUCKETS = 5 };
    const int32_t experts[N] = {0, 2, 1, 3, 0, 1, 2, 3, 0, 3, 1, 2};
    const int32_t bucket[E] = {3, 0, 4, 0}; /* experts 1 and 3 share a bucket; buckets 1 and 2 stay empty */
    float *weight;
    tensor tw = randomize(matrix(ROWS, K), &weight);
    tensor te = tensor_reshape_2d(index_vector(experts, N), ROWS, K);
    for (int mapped = 0; mapped < 2; mapped++) {
        int buckets = mapped ? BUCKETS : E;
        tensor rows = vector(DTYPE_I32, N), slot_weights = vector(DTYPE_F32, N);
        int64_t shape[2] = {ROWS, K};
        tensor positions = with_storage(tensor_make(DTYPE_I32, be->device, 2, shape));
        tensor offsets = vector(DTYPE_I32, buckets + 1);
        be->ops->moe_dispatch(be, rows, slot_weights, positions, offsets, te, tw,
                              mapped ? index_vector(bucket, E) : tensor_none(), buckets);
        const int32_t *got_rows = (const int32_t *)(const void *)fetch(rows);
        const int32_t *got_offsets = (const int32_t *)(const void *)fetch(offsets);
        const int32_t *got_positions = (const int32_t *)(const void *)fetch(positions);
        const float *got_weights = fetch(slot_weights);
        int at = 0, ok = 1;
        for (int b = 0; b < buckets; b++) { /* the expected order, built slot by slot */
            ok &= got_offsets[b] == at;
            for (int i = 0; i < N; i++) {
                int key = mapped ? bucket[experts[i]] : experts[i];
                if (key != b) continue;
                ok &= got_rows[at] == i / K && got_weights[at] == weight[i] && got_positions[i] == at;
                at++;
            }
        }
        ok &= got_offsets[buckets] == N;
        CHECK_MSG(ok, "moe_dispatch (%s): not the stable order by bucket", mapped ? "mapped" : "by expert");
    }
}

/* ---- matrix products ------------------------------------------------ */

/* want[m, n] = sum_k x[m, k] w[n, k] (+ bias[n]). */
static void naive_linear(double *want, const float *x, const float *w, const float *bias, int64_t rows, int64_t k,
                         int64_t n)
{
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < n; j++) {
            double sum = bias ? bias[j] : 0.0;
            for (int64_t c = 0; c < k; c++) sum += (double)x[i * k + c] * w[j * k + c];
            want[i * n + j] = sum;
        }
}

static void test_linear_matches_naive_with_and_without_bias(void)
{
    enum { M = 7, K = 33, N = 19 };
    float *x, *w, *bias;
    tensor tx = randomize(matrix(M, K), &x), tw = randomize(matrix(N, K), &w);
    tensor tbias = randomize(vector(DTYPE_F32, N), &bias), y = matrix(M, N);
    double *want = reference(M * N);
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        naive_linear(want, x, w, with_bias ? bias : NULL, M, K, N);
        be->ops->fill(be, y, NAN); /* y is overwritten, never accumulated into */
        be->ops->linear(be, y, tx, tw, with_bias ? tbias : tensor_none());
        check_close(with_bias ? "linear with bias" : "linear without bias", y, want, TOLERANCE);
    }
}

static void test_linear_grouped_handles_empty_and_uneven_groups(void)
{
    enum { GROUPS = 5, K = 24, N = 10 };
    /* Groups 0 and 2 are empty, the last has a single row. */
    const int64_t offsets[GROUPS + 1] = {0, 0, 5, 5, 12, 13};
    const int64_t rows = offsets[GROUPS];
    float *x, *w[GROUPS];
    tensor tx = randomize(matrix(rows, K), &x), tw[GROUPS];
    for (int g = 0; g < GROUPS; g++) tw[g] = randomize(matrix(N, K), &w[g]);
    double *want = reference(rows * N);
    for (int g = 0; g < GROUPS; g++)
        naive_linear(want + offsets[g] * N, x + offsets[g] * K, w[g], NULL, offsets[g + 1] - offsets[g], K, N);
    tensor y = matrix(rows, N);
    be->ops->fill(be, y, NAN);
    be->ops->linear_grouped(be, y, tx, tw, offsets, GROUPS);
    check_close("linear_grouped", y, want, TOLERANCE);
}

/* ---- elementwise ---------------------------------------------------- */

static double naive_silu(double v) { return v / (1.0 + exp(-v)); }

static void test_add_silu_swiglu_match_naive(void)
{
    enum { M = 6, C = 37 };
    float *a = random_floats(M * C), *b;
    a[0] = -100.0f; /* exp(-v) overflows float: silu must still be ~0 */
    a[1] = 100.0f;
    tensor ta = uploaded(matrix(M, C), a), tb = randomize(matrix(M, C), &b), y = matrix(M, C);
    double *want = reference(M * C);

    for (int i = 0; i < M * C; i++) want[i] = (double)a[i] + b[i];
    be->ops->add(be, y, ta, tb);
    check_close("add", y, want, TOLERANCE);

    for (int i = 0; i < M * C; i++) want[i] = naive_silu(a[i]);
    be->ops->silu(be, y, ta);
    check_close("silu", y, want, TOLERANCE);

    for (int i = 0; i < M * C; i++) want[i] = naive_silu(a[i]) * b[i];
    be->ops->swiglu(be, y, ta, tb);
    check_close("swiglu", y, want, TOLERANCE);
}

static void test_gated_residual_and_scale_rows_update_in_place(void)
{
    enum { M = 5, C = 23 };
    float *x, *gate, *y, *row_scale;
    tensor tx = randomize(matrix(M, C), &x), tgate = randomize(vector(DTYPE_F32, C), &gate);
    tensor ty = randomize(matrix(M, C), &y), tscale = randomize(vector(DTYPE_F32, M), &row_scale);
    double *want = reference(M * C);

    for (int i = 0; i < M; i++)
        for (int c = 0; c < C; c++) want[i * C + c] = x[i * C + c] + (double)gate[c] * y[i * C + c];
    be->ops->gated_residual(be, tx, tgate, ty);
    check_close("gated_residual", tx, want, TOLERANCE);

    for (int i = 0; i < M; i++)
        for (int c = 0; c < C; c++) want[i * C + c] *= row_scale[i];
    be->ops->scale_rows(be, tx, tscale);
    check_close("scale_rows", tx, want, TOLERANCE);
}

/* ---- normalisation -------------------------------------------------- */

/* want = (x - mean) / sqrt(var + eps) * (1 + scale) + shift, per row;
 * NULL shift or scale count as zeros. */
static void naive_layer_norm_modulate(double *want, const float *x, const float *shift, const float *scale,
                                      int64_t rows, int64_t cols, double eps)
{
    for (int64_t i = 0; i < rows; i++) {
        const float *row = x + i * cols;
        double mean = 0, var = 0;
        for (int64_t c = 0; c < cols; c++) mean += row[c];
        mean /= (double)cols;
        for (int64_t c = 0; c < cols; c++) var += (row[c] - mean) * (row[c] - mean);
        var /= (double)cols;
        for (int64_t c = 0; c < cols; c++)
            want[i * cols + c] = (row[c] - mean) / sqrt(var + eps) * (1.0 + (scale ? scale[c] : 0.0)) +
                                 (shift ? shift[c] : 0.0);
    }
}

static void test_layer_norm_modulate_matches_naive_with_and_without_modulation(void)
{
    enum { M = 6, C = 45 };
    const float eps = 1e-6f;
    float *x = random_floats(M * C), *shift, *scale;
    for (int i = C; i < M * C; i++) x[i] = 3.0f + 2.0f * x[i]; /* rows with mean 3, std 2 */
    for (int i = 0; i < C; i++) x[i] *= 1e-3f;                  /* but row 0 has var ~ eps */
    tensor tx = uploaded(matrix(M, C), x), tshift = randomize(vector(DTYPE_F32, C), &shift);
    tensor tscale = randomize(vector(DTYPE_F32, C), &scale), y = matrix(M, C);
    double *want = reference(M * C);

    naive_layer_norm_modulate(want, x, shift, scale, M, C, eps);
    be->ops->layer_norm_modulate(be, y, tx, tshift, tscale, eps);
    check_close("layer_norm_modulate with shift and scale", y, want, TOLERANCE);

    naive_layer_norm_modulate(want, x, NULL, NULL, M, C, eps);
    be->ops->layer_norm_modulate(be, y, tx, tensor_none(), tensor_none(), eps);
    check_close("layer_norm_modulate without shift and scale", y, want, TOLERANCE);
}

static void test_rms_norm_matches_naive(void)
{
    enum { M = 6, C = 45 };
    const float eps = 1e-6f;
    float *x = random_floats(M * C), *weight;
    for (int i = 0; i < M * C; i++) x[i] = i < C ? 1e-3f * x[i] : 0.5f + 3.0f * x[i]; /* row 0: mean(x^2) ~ eps */
    tensor tx = uploaded(matrix(M, C), x), tweight = randomize(vector(DTYPE_F32, C), &weight), y = matrix(M, C);
    double *want = reference(M * C);
    for (int i = 0; i < M; i++) {
        double sum = 0;
        for (int c = 0; c < C; c++) sum += (double)x[i * C + c] * x[i * C + c];
        double inv = 1.0 / sqrt(sum / C + eps);
        for (int c = 0; c < C; c++) want[i * C + c] = x[i * C + c] * inv * weight[c];
    }
    be->ops->rms_norm(be, y, tx, tweight, eps);
    check_close("rms_norm", y, want, TOLERANCE);
}

/* ---- rotary embedding ----------------------------------------------- */

/* The first rope_dim channels of each head rotate pairwise by the (cos, sin)
 * of their row; the rest are copied. */
static void naive_rope(double *want, const float *x, const float *cos_sin, int64_t rows, int heads, int64_t head_dim,
                       int rope_dim)
{
    int64_t cols = heads * head_dim;
    for (int64_t i = 0; i < rows * cols; i++) want[i] = x[i];
    for (int64_t i = 0; i < rows; i++)
        for (int h = 0; h < heads; h++)
            for (int p = 0; p < rope_dim / 2; p++) {
                int64_t at = i * cols + h * head_dim + 2 * p;
                double c = cos_sin[i * rope_dim + 2 * p], s = cos_sin[i * rope_dim + 2 * p + 1];
                want[at] = c * x[at] - s * x[at + 1];
                want[at + 1] = s * x[at] + c * x[at + 1];
            }
}

/* A (cos, sin) table [rows, rope_dim] of random angles. */
static float *random_cos_sin(int64_t rows, int rope_dim)
{
    float *angle = random_floats(rows * rope_dim / 2), *cos_sin = host_alloc(rows * rope_dim * sizeof(float));
    for (int64_t i = 0; i < rows * rope_dim / 2; i++) {
        cos_sin[2 * i] = (float)cos(PI * angle[i]);
        cos_sin[2 * i + 1] = (float)sin(PI * angle[i]);
    }
    return cos_sin;
}

static void check_rope(int rope_dim)
{
    enum { S = 5, H = 3, D = 16 };
    float *x = random_floats(S * H * D), *cos_sin = random_cos_sin(S, rope_dim);
    tensor tx = uploaded(matrix(S, H * D), x), tcos_sin = uploaded(matrix(S, rope_dim), cos_sin);
    double *want = reference(S * H * D);
    naive_rope(want, x, cos_sin, S, H, D, rope_dim);
    be->ops->rope(be, tx, tcos_sin, H, rope_dim);
    char what[64];
    snprintf(what, sizeof what, "rope rope_dim=%d head_dim=%d", rope_dim, D);
    check_close(what, tx, want, TOLERANCE);
    const float *have = fetch(tx);
    int changed = 0;
    for (int i = 0; i < S * H * D; i++) changed += i % D >= rope_dim && memcmp(&have[i], &x[i], sizeof(float)) != 0;
    CHECK_MSG(changed == 0, "%s: %d channels past rope_dim changed", what, changed);
}

static void test_rope_rotates_only_the_first_rope_dim_channels_of_each_head(void)
{
    check_rope(16); /* the whole head */
    check_rope(8);  /* half of it */
}

/* The fused q/k op: RMSNorm over the whole row, then RoPE per head. */
static void test_rms_norm_rope_normalises_then_rotates(void)
{
    enum { S = 5, H = 3, D = 16, ROPE = 8 };
    const float eps = 1e-5f;
    float *x = random_floats(S * H * D), *cos_sin = random_cos_sin(S, ROPE), *weight;
    tensor tx = uploaded(matrix(S, H * D), x), tcos_sin = uploaded(matrix(S, ROPE), cos_sin);
    tensor tweight = randomize(vector(DTYPE_F32, H * D), &weight);
    float *normed = host_alloc(S * H * D * sizeof(float));
    for (int i = 0; i < S; i++) {
        double sum = 0;
        for (int c = 0; c < H * D; c++) sum += (double)x[i * H * D + c] * x[i * H * D + c];
        double inv = 1.0 / sqrt(sum / (H * D) + eps);
        for (int c = 0; c < H * D; c++) normed[i * H * D + c] = (float)(x[i * H * D + c] * inv * weight[c]);
    }
    double *want = reference(S * H * D);
    naive_rope(want, normed, cos_sin, S, H, D, ROPE);
    be->ops->rms_norm_rope(be, tx, tweight, eps, tcos_sin, H, ROPE);
    check_close("rms_norm_rope", tx, want, TOLERANCE);
}

/* ---- attention ------------------------------------------------------ */

/* Per head h and query i: s_j = q_i . k_j / sqrt(D),
 * out_i = sum_j exp(s_j) v_j / sum_j exp(s_j), lse[h, i] = log sum_j exp(s_j),
 * j over all keys, or over 0..i when causal. */
static void naive_attention(double *out, double *lse, const float *q, const float *k, const float *v, int64_t sq,
                            int64_t sk, int heads, int64_t d, int causal)
{
    int64_t width = heads * d;
    double *weight = malloc((size_t)sk * sizeof(double));
    for (int h = 0; h < heads; h++)
        for (int64_t i = 0; i < sq; i++) {
            double sum = 0;
            int64_t keys = causal ? i + 1 : sk;
            for (int64_t j = 0; j < keys; j++) {
                double dot = 0;
                for (int64_t c = 0; c < d; c++) dot += (double)q[i * width + h * d + c] * k[j * width + h * d + c];
                weight[j] = exp(dot / sqrt((double)d));
                sum += weight[j];
            }
            lse[h * sq + i] = log(sum);
            for (int64_t c = 0; c < d; c++) {
                double acc = 0;
                for (int64_t j = 0; j < keys; j++) acc += weight[j] * v[j * width + h * d + c];
                out[i * width + h * d + c] = acc / sum;
            }
        }
    free(weight);
}

/* q is scaled by q_scale to make the softmax as sharp as wanted; causal
 * runs attention_causal, which has no lse output. */
static void check_attention(int heads, int64_t sq, int64_t sk, int64_t d, float q_scale, int causal)
{
    int64_t width = heads * d;
    float *q = random_floats(sq * width), *k, *v;
    for (int64_t i = 0; i < sq * width; i++) q[i] *= q_scale;
    tensor tq = uploaded(matrix(sq, width), q), tk = randomize(matrix(sk, width), &k);
    tensor tv = randomize(matrix(sk, width), &v);
    tensor out = matrix(sq, width), lse = matrix(heads, sq); /* F32 [H, Sq] */
    double *want_out = reference(sq * width), *want_lse = reference(heads * sq);
    naive_attention(want_out, want_lse, q, k, v, sq, sk, heads, d, causal);

    char label[80], what[96];
    snprintf(label, sizeof label, "%s H=%d Sq=%lld Sk=%lld D=%lld q*%g", causal ? "attention_causal" : "attention",
             heads, (long long)sq, (long long)sk, (long long)d, q_scale);
    if (causal) {
        be->ops->attention_causal(be, out, tq, tk, tv, heads);
        check_close(label, out, want_out, TOLERANCE);
        return;
    }
    be->ops->attention(be, out, lse, tq, tk, tv, heads);
    check_close(label, out, want_out, TOLERANCE);
    snprintf(what, sizeof what, "%s lse", label);
    check_close(what, lse, want_lse, TOLERANCE);

    be->ops->fill(be, out, NAN);
    be->ops->attention(be, out, tensor_none(), tq, tk, tv, heads);
    snprintf(what, sizeof what, "%s without lse", label);
    check_close(what, out, want_out, TOLERANCE);
}

static void test_attention_matches_naive_softmax_and_lse(void)
{
    check_attention(3, 5, 9, 32, 1.0f, 0);   /* Sq < Sk */
    check_attention(2, 11, 4, 64, 1.0f, 0);  /* Sq > Sk */
    check_attention(2, 7, 13, 32, 40.0f, 0); /* scores near 100: exp overflows without a max shift */
}

static void test_attention_with_many_keys_processes_queries_in_blocks(void)
{
    /* The CPU backend scores 16 MiB / Sk queries at a time: 1024 for
     * Sk = 4096, so 1100 queries take two blocks, the second one short. */
    check_attention(2, 1100, 4096, 8, 1.0f, 0);
}

static void test_attention_causal_sees_only_earlier_keys(void)
{
    check_attention(3, 9, 9, 32, 1.0f, 1);
    check_attention(2, 17, 17, 64, 1.0f, 1);
    /* Sq = Sk = 4100: five query blocks, so the mask must use the block's offset. */
    check_attention(1, 4100, 4100, 8, 1.0f, 1);
}

/* ---- images [C, H, W] (VAE) ----------------------------------------- */

/* want[co, oy, ox] = bias[co] + sum over ci, ky, kx of
 * w[co, ci, ky, kx] x[ci, oy * stride + ky - top, ox * stride + kx - left], zero outside x. */
static void naive_conv2d(double *want, const float *x, const float *w, const float *bias, int64_t cin, int64_t h,
                         int64_t wi, int64_t cout, int kernel, int stride, const int pad[4])
{
    int64_t ho = (h + pad[0] + pad[1] - kernel) / stride + 1, wo = (wi + pad[2] + pad[3] - kernel) / stride + 1;
    for (int64_t co = 0; co < cout; co++)
        for (int64_t oy = 0; oy < ho; oy++)
            for (int64_t ox = 0; ox < wo; ox++) {
                double sum = bias ? bias[co] : 0.0;
                for (int64_t ci = 0; ci < cin; ci++)
                    for (int ky = 0; ky < kernel; ky++)
                        for (int kx = 0; kx < kernel; kx++) {
                            int64_t iy = oy * stride + ky - pad[0], ix = ox * stride + kx - pad[2];
                            if (iy < 0 || iy >= h || ix < 0 || ix >= wi) continue;
                            double weight = w[((co * cin + ci) * kernel + ky) * kernel + kx];
                            sum += weight * x[(ci * h + iy) * wi + ix];
                        }
                want[(co * ho + oy) * wo + ox] = sum;
            }
}

static void check_conv2d(int kernel, int stride, const int pad[4], int with_bias)
{
    enum { CIN = 3, COUT = 5, H = 7, W = 9 };
    int64_t ho = (H + pad[0] + pad[1] - kernel) / stride + 1, wo = (W + pad[2] + pad[3] - kernel) / stride + 1;
    float *x, *w, *bias;
    tensor tx = randomize(image(CIN, H, W), &x), tw = randomize(matrix(COUT, CIN * kernel * kernel), &w);
    tensor tbias = randomize(vector(DTYPE_F32, COUT), &bias), y = image(COUT, ho, wo);
    double *want = reference(COUT * ho * wo);
    naive_conv2d(want, x, w, with_bias ? bias : NULL, CIN, H, W, COUT, kernel, stride, pad);
    be->ops->conv2d(be, y, tx, tw, with_bias ? tbias : tensor_none(), kernel, stride, pad);
    char what[96];
    snprintf(what, sizeof what, "conv2d kernel=%d stride=%d pad={%d,%d,%d,%d}%s", kernel, stride, pad[0], pad[1],
             pad[2], pad[3], with_bias ? " with bias" : "");
    check_close(what, y, want, TOLERANCE);
}

static void test_conv2d_matches_naive_with_padding_and_stride(void)
{
    check_conv2d(3, 1, (const int[4]){1, 1, 1, 1}, 1); /* same-size 3x3 */
    check_conv2d(3, 2, (const int[4]){0, 1, 0, 1}, 0); /* asymmetric downsampling */
    check_conv2d(3, 1, (const int[4]){2, 0, 1, 0}, 1); /* halo rows: top only */
    check_conv2d(1, 1, (const int[4]){0, 0, 0, 0}, 1); /* 1x1 projection */
}

static void test_group_norm_stats_and_apply_match_naive(void)
{
    enum { C = 8, H = 5, W = 7, GROUPS = 4, PER_GROUP = C / GROUPS, N = H * W, COUNT = PER_GROUP * N };
    const float eps = 1e-6f;
    float *x = random_floats(C * N), *weight, *bias;
    for (int i = 0; i < C * N; i++) x[i] = 3.0f + 2.0f * x[i];
    tensor tx = uploaded(image(C, H, W), x), tweight = randomize(vector(DTYPE_F32, C), &weight);
    tensor tbias = randomize(vector(DTYPE_F32, C), &bias), stats = matrix(GROUPS, 2), y = image(C, H, W);
    double *want_stats = reference(GROUPS * 2), *want = reference(C * N);
    for (int i = 0; i < C * N; i++) {
        want_stats[2 * (i / COUNT)] += x[i];
        want_stats[2 * (i / COUNT) + 1] += (double)x[i] * x[i];
    }
    be->ops->group_norm_stats(be, stats, tx, GROUPS);
    check_close("group_norm_stats", stats, want_stats, TOLERANCE);

    for (int silu = 0; silu < 2; silu++) {
        for (int i = 0; i < C * N; i++) {
            int c = i / N, g = c / PER_GROUP;
            double mean = want_stats[2 * g] / COUNT, var = want_stats[2 * g + 1] / COUNT - mean * mean;
            double v = (x[i] - mean) / sqrt(var + eps) * weight[c] + bias[c];
            want[i] = silu ? naive_silu(v) : v;
        }
        be->ops->group_norm_apply(be, y, tx, stats, COUNT, tweight, tbias, eps, silu);
        check_close(silu ? "group_norm_apply with silu" : "group_norm_apply", y, want, TOLERANCE);
    }
}

static void test_upsample_nearest2x_repeats_each_pixel_exactly(void)
{
    enum { C = 3, H = 4, W = 5 };
    float *x;
    tensor tx = randomize(image(C, H, W), &x), y = image(C, 2 * H, 2 * W);
    float *want = host_alloc(C * 4 * H * W * sizeof(float));
    for (int c = 0; c < C; c++)
        for (int oy = 0; oy < 2 * H; oy++)
            for (int ox = 0; ox < 2 * W; ox++) want[(c * 2 * H + oy) * 2 * W + ox] = x[(c * H + oy / 2) * W + ox / 2];
    be->ops->upsample_nearest2x(be, y, tx);
    check_exact("upsample_nearest2x", y, want);
}

static void test_copy_rows_pastes_a_band_of_every_channel(void)
{
    enum { C = 3, HX = 6, HY = 9, W = 4, X_ROW = 2, Y_ROW = 5, ROWS = 3 };
    float *x, *y;
    tensor tx = randomize(image(C, HX, W), &x), ty = randomize(image(C, HY, W), &y);
    float *want = host_alloc(C * HY * W * sizeof(float));
    memcpy(want, y, C * HY * W * sizeof(float));
    for (int c = 0; c < C; c++)
        memcpy(want + (c * HY + Y_ROW) * W, x + (c * HX + X_ROW) * W, ROWS * W * sizeof(float));
    be->ops->copy_rows(be, ty, Y_ROW, tx, X_ROW, ROWS);
    check_exact("copy_rows (rows 2..4 of every channel to rows 5..7)", ty, want);
}

static void test_transpose_moves_every_element_exactly(void)
{
    /* Not multiples of the CPU's 32 x 32 blocks. */
    enum { ROWS = 37, COLS = 70 };
    float *x;
    tensor tx = randomize(matrix(ROWS, COLS), &x), y = matrix(COLS, ROWS);
    float *want = host_alloc(ROWS * COLS * sizeof(float));
    for (int i = 0; i < ROWS; i++)
        for (int j = 0; j < COLS; j++) want[j * ROWS + i] = x[i * COLS + j];
    be->ops->transpose(be, y, tx);
    check_exact("transpose", y, want);
}

static void run(void (*test)(void))
{
    test();
    while (device_count) be->ops->free(be, device_owned[--device_count]);
    while (host_count) free(host_owned[--host_count]);
}

int main(void)
{
    be = backend_cpu_create();
    if (!be) {
        fprintf(stderr, "test_backend_ops: %s\n", error_message());
        return 1;
    }
    run(test_alloc_gives_independent_buffers_that_round_trip_exactly);
    run(test_i32_upload_download_copies_raw_words);
    run(test_copy_moves_data_between_shapes_of_equal_numel);
    run(test_fill_writes_every_element_of_the_view_and_nothing_else);
    run(test_gather_rows_copies_indexed_rows_exactly);
    run(test_combine_rows_adds_each_rows_slots);
    run(test_moe_dispatch_sorts_slots_stably);
    run(test_linear_matches_naive_with_and_without_bias);
    run(test_linear_grouped_handles_empty_and_uneven_groups);
    run(test_add_silu_swiglu_match_naive);
    run(test_gated_residual_and_scale_rows_update_in_place);
    run(test_layer_norm_modulate_matches_naive_with_and_without_modulation);
    run(test_rms_norm_matches_naive);
    run(test_rms_norm_rope_normalises_then_rotates);
    run(test_rope_rotates_only_the_first_rope_dim_channels_of_each_head);
    run(test_attention_matches_naive_softmax_and_lse);
    run(test_attention_with_many_keys_processes_queries_in_blocks);
    run(test_attention_causal_sees_only_earlier_keys);
    run(test_conv2d_matches_naive_with_padding_and_stride);
    run(test_group_norm_stats_and_apply_match_naive);
    run(test_upsample_nearest2x_repeats_each_pixel_exactly);
    run(test_copy_rows_pastes_a_band_of_every_channel);
    run(test_transpose_moves_every_element_exactly);
    backend_destroy(be);
    return test_finish("test_backend_ops");
}
