/* The CPU backend's text-encoder ops (backend_ops activation, layer_norm,
 * attention_bias; backend/backend.h) against naive double-precision loops
 * written here from backend.h's formulas, on random normals with odd sizes:
 * every activation kind with and without the gate, in place; LayerNorm with
 * and without a bias, on rows with a large mean; attention with a per-head
 * bias, a scale, Sq != Sk, masked keys (-FLT_MAX) and a query row whose keys
 * are all masked (equal weights, as transformers gives). Within 1e-5 of each
 * reference's scale. */
#include "backend/backend.h"
#include "core/error.h"
#include "core/philox.h"
#include "test_util.h"

#include <float.h>
#include <string.h>

#define TOLERANCE 1e-5
#define SEED 31337u

static backend *be;
static uint64_t next_stream;

static float *random_floats(int64_t n, float scale, float offset)
{
    float *h = malloc((size_t)n * sizeof(float));
    philox_fill_normal(SEED, next_stream++, 0, n, h);
    for (int64_t i = 0; i < n; i++) h[i] = h[i] * scale + offset;
    return h;
}

static tensor device_matrix(tensor_dtype dtype, int64_t rows, int64_t cols, const float *host)
{
    tensor t = tensor_make_2d(dtype, be->device, rows, cols);
    t.data = be->ops->alloc(be, tensor_nbytes(&t));
    if (host) be->ops->upload(be, t, host);
    return t;
}

static void check_close(const char *what, tensor got, const double *want)
{
    int64_t n = tensor_numel(&got);
    float *have = malloc((size_t)n * sizeof(float));
    be->ops->download(be, have, got);
    double error = 0, scale = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)have[i] - want[i]);
        if (isnan(d) || d > error) error = d;
        if (fabs(want[i]) > scale) scale = fabs(want[i]);
    }
    CHECK_MSG(error <= TOLERANCE * scale, "%s: max |error| %.3g exceeds %.0e * scale %.3g", what, error, TOLERANCE,
              scale);
    printf("  %-40s max |error| %.3g (scale %.3g)\n", what, error, scale);
    free(have);
}

static double naive_activation(double x, backend_activation act)
{
    const double pi = 3.14159265358979323846;
    if (act == BACKEND_GELU_TANH) return 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x * x * x)));
    if (act == BACKEND_QUICK_GELU) return x / (1 + exp(-1.702 * x));
    return 0.5 * x * (1 + erf(x / sqrt(2.0)));
}

static void test_activation(void)
{
    const int64_t rows = 7, cols = 37, n = rows * cols;
    const char *names[3] = {"gelu", "gelu_tanh", "quick_gelu"};
    float *x = random_floats(n, 3.0f, 0.0f), *up = random_floats(n, 1.0f, 0.0f);
    double *want = malloc((size_t)n * sizeof(double));
    for (int act = BACKEND_GELU; act <= BACKEND_QUICK_GELU; act++) {
        char what[64];
        tensor tx = device_matrix(DTYPE_F32, rows, cols, x), tup = device_matrix(DTYPE_F32, rows, cols, up);
        tensor ty = device_matrix(DTYPE_F32, rows, cols, NULL);
        for (int64_t i = 0; i < n; i++) want[i] = naive_activation(x[i], (backend_activation)act);
        be->ops->activation(be, ty, tx, tensor_none(), (backend_activation)act);
        snprintf(what, sizeof what, "activation %s", names[act]);
        check_close(what, ty, want);
        for (int64_t i = 0; i < n; i++) want[i] *= up[i];
        be->ops->activation(be, tx, tx, tup, (backend_activation)act); /* in place */
        snprintf(what, sizeof what, "activation %s * up, in place", names[act]);
        check_close(what, tx, want);
        be->ops->free(be, tx.data);
        be->ops->free(be, tup.data);
        be->ops->free(be, ty.data);
    }
    /* Known values: gelu(1) = 0.8413447460685429, gelu_new(1) = 0.8411919906082768, quick_gelu(1) = 1 / (1 + e^-1.702). */
    CHECK(fabs(naive_activation(1, BACKEND_GELU) - 0.8413447460685429) < 1e-12);
    CHECK(fabs(naive_activation(1, BACKEND_GELU_TANH) - 0.8411919906082768) < 1e-12);
    free(x);
    free(up);
    free(want);
}

static void test_layer_norm(void)
{
    const int64_t rows = 5, cols = 45, n = rows * cols;
    const float eps = 1e-5f;
    float *x = random_floats(n, 2.0f, 30.0f), *w = random_floats(cols, 0.5f, 1.0f), *b = random_floats(cols, 1, 0);
    double *want = malloc((size_t)n * sizeof(double));
    tensor tx = device_matrix(DTYPE_F32, rows, cols, x), ty = device_matrix(DTYPE_F32, rows, cols, NULL);
    tensor tw = device_matrix(DTYPE_F32, 1, cols, w), tb = device_matrix(DTYPE_F32, 1, cols, b);
    for (int with_bias = 1; with_bias >= 0; with_bias--) {
        for (int64_t i = 0; i < rows; i++) {
            double mean = 0, var = 0;
            for (int64_t c = 0; c < cols; c++) mean += x[i * cols + c] / (double)cols;
            for (int64_t c = 0; c < cols; c++) var += (x[i * cols + c] - mean) * (x[i * cols + c] - mean) / cols;
            for (int64_t c = 0; c < cols; c++)
                want[i * cols + c] = (x[i * cols + c] - mean) / sqrt(var + eps) * w[c] + (with_bias ? b[c] : 0);
        }
        be->ops->layer_norm(be, ty, tx, tw, with_bias ? tb : tensor_none(), eps);
        check_close(with_bias ? "layer_norm (mean 30)" : "layer_norm without bias", ty, want);
    }
    tensor all[] = {tx, ty, tw, tb};
    for (int i = 0; i < 4; i++) be->ops->free(be, all[i].data);
    free(x);
    free(w);
    free(b);
    free(want);
}

static void test_attention_bias(void)
{
    const int heads = 3, d = 8;
    const int64_t sq = 19, sk = 23, width = heads * d;
    const float scale = 0.7f;
    float *q = random_floats(sq * width, 1, 0), *k = random_floats(sk * width, 1, 0);
    float *v = random_floats(sk * width, 1, 0), *bias = random_floats(heads * sq * sk, 2, 0);
    for (int h = 0; h < heads; h++)
        for (int64_t i = 0; i < sq; i++)
            for (int64_t j = 0; j < sk; j++) {
                float *b = &bias[(h * sq + i) * sk + j];
                if (j % 5 == 3 || i == 4) *b = *b + -FLT_MAX; /* masked keys; query 4 sees none */
            }
    double *want = calloc((size_t)(sq * width), sizeof(double)), *p = malloc((size_t)sk * sizeof(double));
    for (int h = 0; h < heads; h++)
        for (int64_t i = 0; i < sq; i++) {
            double m = -INFINITY, sum = 0;
            for (int64_t j = 0; j < sk; j++) {
                double s = 0;
                for (int c = 0; c < d; c++) s += (double)q[i * width + h * d + c] * k[j * width + h * d + c];
                p[j] = scale * s + bias[(h * sq + i) * sk + j];
                if (p[j] > m) m = p[j];
            }
            for (int64_t j = 0; j < sk; j++) sum += p[j] = exp(p[j] - m);
            for (int64_t j = 0; j < sk; j++)
                for (int c = 0; c < d; c++) want[i * width + h * d + c] += p[j] / sum * v[j * width + h * d + c];
        }
    /* The all-masked query averages every key's value. */
    for (int c = 0; c < width; c++) {
        double mean = 0;
        for (int64_t j = 0; j < sk; j++) mean += v[j * width + c] / (double)sk;
        CHECK(fabs(want[4 * width + c] - mean) < 1e-9);
    }
    tensor tq = device_matrix(DTYPE_F32, sq, width, q), tk = device_matrix(DTYPE_F32, sk, width, k);
    tensor tv = device_matrix(DTYPE_F32, sk, width, v), tb = device_matrix(DTYPE_F32, heads * sq, sk, bias);
    tensor out = device_matrix(DTYPE_F32, sq, width, NULL);
    be->ops->attention_bias(be, out, tq, tk, tv, tb, heads, scale);
    check_close("attention_bias (masked keys, Sq 19, Sk 23)", out, want);
    tensor all[] = {tq, tk, tv, tb, out};
    for (int i = 0; i < 5; i++) be->ops->free(be, all[i].data);
    free(q);
    free(k);
    free(v);
    free(bias);
    free(want);
    free(p);
}

int main(void)
{
    be = backend_cpu_create();
    test_activation();
    test_layer_norm();
    test_attention_bias();
    backend_destroy(be);
    return test_finish("test_text_encoder_ops");
}
