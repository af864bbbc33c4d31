/* Under mpirun, tp = every rank: an FP8 linear layer split over tensor-parallel
 * ranks computes what the serial FP8 layer computes (docs/fp8.md).
 *   column parallel (weight rows split): each rank's codes and scales are the
 *     serial ones' rows, and its outputs the serial output's columns;
 *   row parallel (weight columns split, x's columns split): the scales stay
 *     whole, the ranks quantize x with the whole row's amax (max-reduced,
 *     parallel/fp8_rows.h), and the all-reduced partial products equal the
 *     serial product up to the order of F32 sums; quantizing with each
 *     rank's own amax instead would not (checked too: the test can fail);
 *   the grouped product of experts likewise, over two groups of rows.
 * x has a zero row (scale 1) and a row whose outlier sits on one rank.
 *
 * With the argument `cuda` (one GPU per rank, NCCL's max all-reduce) the
 * same on the CUDA backend with F32 activations and outputs: its FP8
 * products sum in the tensor cores' order and precision (about 14 bits
 * between promotions to F32), so the layouts match the serial product to
 * 1e-3 of its largest value instead of 1e-6, still a tenth of what each
 * rank's own amax moves it. Without a GPU: skipped (77). */
#include "core/error.h"
#include "core/philox.h"
#include "io/weights.h"
#include "parallel/fp8_rows.h"
#include "parallel/world.h"
#include "test_layouts.h"
#include "test_util.h"

#include <string.h>

#define M 6
#define K 64
#define N 24

static float x[M * K];
static backend *be;

/* An F32 [rows, cols] on the backend, holding host's values when given. */
static tensor f32_tensor(const float *host, int64_t rows, int64_t cols)
{
    tensor t = tensor_make_2d(DTYPE_F32, be->device, rows, cols);
    t.data = be->ops->alloc(be, tensor_nbytes(&t));
    if (host) be->ops->upload(be, t, host);
    return t;
}

static void to_host(float *host, tensor t)
{
    be->ops->synchronize(be);
    be->ops->download(be, host, t);
}

/* An F8 weight's codes and scales on the host (malloc'ed). */
static uint8_t *codes_of(tensor w, float **scales)
{
    tensor s = tensor_make_2d(DTYPE_F32, be->device, tensor_rows(&w), 1);
    uint8_t *codes = malloc((size_t)tensor_nbytes(&w));
    *scales = malloc((size_t)tensor_rows(&w) * sizeof(float));
    s.data = w.scale;
    to_host((float *)(void *)codes, w); /* raw bytes (backend.h) */
    to_host(*scales, s);
    return codes;
}

static int load(weight_loader *wl, tensor *w, weight_shard shard)
{
    return weight_load_linear(wl, w, "blocks.0.ff.w2.weight", N, K, shard);
}

static double relative_max(const float *a, const float *b, long n) { return test_max_abs_diff(a, b, n) / test_max_abs(b, n); }

int main(int argc, char **argv)
{
    const char *device = test_layouts_device(argc, argv);
    if (!device) return 77;
    world w;
    if (world_init(&w, &argc, &argv)) return 1;
    be = backend_create(device);
    CHECK_MSG(be != NULL, "%s", error_message());
    if (!be) return 1;
    double tolerance = be->device == DEVICE_CPU ? 1e-6 : 1e-3;
    parallel_degrees degrees = {.tp = w.size};
    parallel_context ctx;
    CHECK_MSG(parallel_context_init(&ctx, &w, degrees, be) == 0, "%s", error_message());
    process_group *tp = ctx.groups[GROUP_TP];
    int rank = tp->rank, size = tp->size;
    philox_fill_normal(5, 1, 0, M * K, x);
    memset(x + 2 * K, 0, K * sizeof(float)); /* a zero row */
    x[4 * K + K - 1] = 40.0f;                /* an outlier in the last rank's columns */
    arena scratch;
    arena_init(&scratch, be);

    weight_loader wl;
    weight_loader_init(&wl, be, NULL, 1, 11);
    wl.fp8 = 1;
    tensor whole, rows_part, cols_part;
    weight_shard by_rows = {SHARD_ROWS, rank, size, NULL}, by_cols = {SHARD_COLS, rank, size, NULL};
    CHECK_MSG(load(&wl, &whole, shard_whole()) == 0 && load(&wl, &rows_part, by_rows) == 0 &&
                  load(&wl, &cols_part, by_cols) == 0, "%s", error_message());
    int64_t first_row = N * rank / size, rows = N * (rank + 1) / size - first_row;
    int64_t first_col = K * rank / size, cols = K * (rank + 1) / size - first_col;
    /* Held as 1 byte per weight and 4 per output channel. */
    CHECK(whole.dtype == DTYPE_F8_E4M3 && whole.scale && rows_part.dtype == DTYPE_F8_E4M3 && cols_part.scale);
    CHECK(wl.bytes_on_device == (N * K + 4 * N) + (rows * K + 4 * rows) + (N * cols + 4 * N));
    /* Shards of the codes and scales are the serial ones'. */
    float *whole_scales, *rows_scales, *cols_scales;
    uint8_t *whole_codes = codes_of(whole, &whole_scales), *rows_codes = codes_of(rows_part, &rows_scales);
    uint8_t *cols_codes = codes_of(cols_part, &cols_scales);
    CHECK(!memcmp(rows_codes, whole_codes + first_row * K, (size_t)(rows * K)));
    CHECK(!memcmp(rows_scales, whole_scales + first_row, (size_t)rows * sizeof(float)));
    CHECK(!memcmp(cols_scales, whole_scales, N * sizeof(float)));
    for (int64_t r = 0; r < N; r++) CHECK(!memcmp(cols_codes + r * cols, whole_codes + r * K + first_col, (size_t)cols));
    free(whole_codes), free(rows_codes), free(cols_codes), free(whole_scales), free(rows_scales), free(cols_scales);

    float serial[M * N], y[M * N], part[M * N], x_cols[M * K];
    tensor xt_whole = f32_tensor(x, M, K), out = f32_tensor(NULL, M, N), yt = f32_tensor(NULL, M, N);
    be->ops->linear(be, out, xt_whole, whole, tensor_none());
    to_host(serial, out);

    /* Column parallel: this rank's output columns. */
    tensor part_t = tensor_make_2d(DTYPE_F32, be->device, M, rows);
    part_t.data = out.data;
    be->ops->linear(be, part_t, xt_whole, rows_part, tensor_none());
    to_host(part, part_t);
    double worst = 0;
    for (int64_t m = 0; m < M; m++)
        for (int64_t j = 0; j < rows; j++) {
            double d = fabs(part[m * rows + j] - serial[m * N + first_row + j]);
            if (d > worst) worst = d;
        }
    CHECK_MSG(worst <= tolerance * test_max_abs(serial, M * N), "column parallel: max diff %.3g", worst);

    /* Row parallel: x's columns of this rank, partial products all-reduced. */
    for (int64_t m = 0; m < M; m++) memcpy(x_cols + m * cols, x + m * K + first_col, (size_t)cols * sizeof(float));
    tensor xt = f32_tensor(x_cols, M, cols);
    CHECK(fp8_row_parallel_linear(be, &scratch, tp, yt, xt, cols_part, tensor_none()) == 0);
    CHECK(tp->ops->all_reduce_sum(tp, yt) == 0);
    to_host(y, yt);
    double row_parallel = relative_max(y, serial, M * N);
    CHECK_MSG(row_parallel <= tolerance, "row parallel: relative max diff %.3g", row_parallel);
    /* The same with each rank's own amax: another quantization when split. */
    be->ops->linear(be, yt, xt, cols_part, tensor_none());
    CHECK(tp->ops->all_reduce_sum(tp, yt) == 0);
    to_host(y, yt);
    double own_amax = relative_max(y, serial, M * N);
    if (size > 1) CHECK_MSG(own_amax > 1e-3, "local amax should differ: %.3g", own_amax);

    /* Grouped (experts): rows [0, 2) and [2, 6) through the same weight twice. */
    int64_t offsets[3] = {0, 2, M};
    tensor ws[2] = {cols_part, cols_part};
    CHECK(fp8_row_parallel_linear_grouped(be, &scratch, tp, yt, xt, ws, offsets, 2) == 0);
    CHECK(tp->ops->all_reduce_sum(tp, yt) == 0);
    to_host(y, yt);
    double grouped = relative_max(y, serial, M * N);
    CHECK_MSG(grouped <= tolerance, "grouped row parallel: relative max diff %.3g", grouped);
    CHECK_MSG(be->ops->status(be) == 0, "%s", error_message());
    if (w.rank == 0)
        printf("  %s tp%d: column parallel %.3g, row parallel %.3g (own amax per rank: %.3g), grouped %.3g\n", device,
               size, worst, row_parallel, own_amax, grouped);
    be->ops->free(be, xt_whole.data), be->ops->free(be, out.data), be->ops->free(be, yt.data);
    be->ops->free(be, xt.data);

    weight_loader_free_all(&wl);
    arena_free(&scratch);
    parallel_context_free(&ctx);
    backend_destroy(be);
    int status = test_finish_rank("mpi_fp8_linear_layouts", w.rank, w.size);
    world_finalize(&w);
    return status;
}
