/* --random-weights: fill_uniform is the Philox stream of core/philox.h laid
 * out as documented in backend/backend.h, and a shard of a random tensor is,
 * bit for bit, the same block of the whole tensor (so every layout of a
 * random model holds the same model), on the CPU backend. */
#include "backend/backend.h"
#include "core/error.h"
#include "core/philox.h"
#include "io/weights.h"
#include "test_util.h"

#include <string.h>

enum { ROWS = 7, COLS = 10 };

/* The op against philox_fill_uniform over the full matrix. */
static void test_fill_uniform(backend *be)
{
    float full[ROWS * COLS];
    philox_fill_uniform(11, 42, 0, ROWS * COLS, full);
    const int64_t row0 = 2, col0 = 3, rows = 4, cols = 5;
    tensor block = tensor_make_2d(DTYPE_F32, DEVICE_CPU, rows, cols);
    float data[4 * 5];
    block.data = data;
    be->ops->fill_uniform(be, block, 11, 42, 0.5f, COLS, row0, col0);
    int same = 1;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) same &= data[r * cols + c] == full[(row0 + r) * COLS + col0 + c] * 0.5f;
    CHECK_MSG(same, "fill_uniform differs from philox_fill_uniform's block");
    int inside = 1;
    for (int i = 0; i < ROWS * COLS; i++) inside &= full[i] > -1.0f && full[i] < 1.0f;
    CHECK(inside);
}

static tensor load(weight_loader *wl, const char *name, int64_t rows, int64_t cols, shard_axis axis, int index,
                   int count)
{
    weight_shard shard = {axis, index, count, NULL};
    tensor t = {0};
    CHECK_MSG(weight_load(wl, &t, name, rows, cols, shard) == 0, "%s: %s", name, error_message());
    return t;
}

/* Row and column shards, and a vector's shard, against the whole tensor. */
static void test_shards(backend *be)
{
    weight_loader wl;
    weight_loader_init(&wl, be, NULL, 1, 5);
    tensor whole = load(&wl, "blocks.0.proj.weight", ROWS, COLS, SHARD_NONE, 0, 1);
    tensor rows = load(&wl, "blocks.0.proj.weight", ROWS, COLS, SHARD_ROWS, 1, 3); /* rows 2..3 */
    tensor cols = load(&wl, "blocks.0.proj.weight", ROWS, COLS, SHARD_COLS, 2, 4); /* columns 5..6 */
    tensor vector = load(&wl, "blocks.0.proj.bias", ROWS, 0, SHARD_NONE, 0, 1);
    tensor piece = load(&wl, "blocks.0.proj.bias", ROWS, 0, SHARD_ROWS, 1, 2); /* rows 3..6 */
    tensor norm = load(&wl, "blocks.0.norm.weight", ROWS, 0, SHARD_NONE, 0, 1);
    const float *w = whole.data, *r = rows.data, *c = cols.data, *v = vector.data, *p = piece.data, *n = norm.data;
    CHECK(rows.shape[0] == 2 && rows.shape[1] == COLS && cols.shape[0] == ROWS && cols.shape[1] == 2);
    CHECK(memcmp(r, w + 2 * COLS, 2 * COLS * sizeof(float)) == 0);
    int same = 1;
    for (int i = 0; i < ROWS; i++) same &= c[i * 2] == w[i * COLS + 5] && c[i * 2 + 1] == w[i * COLS + 6];
    CHECK_MSG(same, "column shard differs from the whole tensor's columns");
    CHECK(piece.shape[0] == 4 && memcmp(p, v + 3, 4 * sizeof(float)) == 0);
    /* Uneven parts by explicit bounds: part 1 of {0, 1, 6, COLS} is columns 1..5. */
    const int64_t bounds[4] = {0, 1, 6, COLS};
    tensor uneven = {0};
    CHECK_MSG(weight_load(&wl, &uneven, "blocks.0.proj.weight", ROWS, COLS, (weight_shard){SHARD_COLS, 1, 3, bounds}) ==
                  0,
              "%s", error_message());
    same = uneven.shape[0] == ROWS && uneven.shape[1] == 5;
    for (int i = 0; same && i < ROWS; i++) same &= memcmp((const float *)uneven.data + i * 5, w + i * COLS + 1, 5 * sizeof(float)) == 0;
    CHECK_MSG(same, "the part of explicit bounds differs from the whole tensor's columns 1..5");
    /* Scales: a matrix's values within sqrt(3 / fan-in), a bias's within sqrt(3) * 0.02; norms are ones. */
    int scaled = 1, ones = 1;
    for (int i = 0; i < ROWS * COLS; i++) scaled &= fabsf(w[i]) < sqrtf(3.0f / COLS);
    for (int i = 0; i < ROWS; i++) scaled &= fabsf(v[i]) < sqrtf(3.0f) * 0.02f, ones &= n[i] == 1.0f;
    CHECK(scaled && ones);
    /* Another name is another stream. */
    tensor other = load(&wl, "blocks.1.proj.weight", ROWS, COLS, SHARD_NONE, 0, 1);
    CHECK(memcmp(other.data, w, ROWS * COLS * sizeof(float)) != 0);
    CHECK(wl.parameters == 2 * ROWS * COLS + 2 * COLS + ROWS * 2 + ROWS + 4 + ROWS + ROWS * 5);
    weight_loader_free_all(&wl);
}

int main(void)
{
    backend *be = backend_cpu_create();
    CHECK(be != NULL);
    if (!be) return test_finish("test_random_weights");
    test_fill_uniform(be);
    test_shards(be);
    backend_destroy(be);
    return test_finish("test_random_weights");
}
