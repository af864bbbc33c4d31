/* The ops that parallel layouts are built from give the serial result:
 * two-phase RMSNorm (sums, then apply) equals rms_norm, also when the row is
 * split in column shards whose sums are added; split_columns/merge_columns
 * move the right blocks and are inverses; attention over keys cut in two
 * parts, merged by attention_merge, equals attention over all keys. */
#include "backend/backend.h"
#include "core/philox.h"
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

static backend *be;

static tensor random_tensor(int64_t rows, int64_t cols, uint64_t stream)
{
    tensor t = tensor_make_2d(DTYPE_F32, DEVICE_CPU, rows, cols);
    t.data = malloc((size_t)(rows * cols) * sizeof(float));
    philox_fill_normal(11, stream, 0, rows * cols, t.data);
    return t;
}


static tensor empty(int64_t rows, int64_t cols)
{
    tensor t = tensor_make_2d(DTYPE_F32, DEVICE_CPU, rows, cols);
    t.data = calloc((size_t)(rows * cols), sizeof(float));
    return t;
}

static void two_phase_rms_norm_equals_rms_norm(void)
{
    int64_t m = 7, c = 24;
    tensor x = random_tensor(m, c, 1), w = random_tensor(1, c, 2);
    tensor want = empty(m, c), got = empty(m, c), sums = empty(m, 1), part = empty(m, 1);
    be->ops->rms_norm(be, want, x, w, 1e-5f);
    /* Three column shards, as three TP ranks would hold them; sums added. */
    for (int shard = 0; shard < 3; shard++) {
        tensor xs = empty(m, c / 3);
        for (int64_t r = 0; r < m; r++)
            memcpy((float *)xs.data + r * (c / 3), (float *)x.data + r * c + shard * (c / 3), (size_t)(c / 3) * 4);
        be->ops->row_sum_squares(be, part, xs);
        for (int64_t r = 0; r < m; r++) ((float *)sums.data)[r] += ((float *)part.data)[r];
        free(xs.data);
    }
    be->ops->rms_norm_with_sums(be, got, x, sums, c, w, 1e-5f);
    CHECK(test_max_abs_diff(got.data, want.data, m * c) < 1e-5);
    free(x.data), free(w.data), free(want.data), free(got.data), free(sums.data), free(part.data);
}

static void split_and_merge_columns(void)
{
    int64_t m = 5, c = 12;
    int parts = 3;
    tensor x = random_tensor(m, c, 3), split = empty(parts * m, c / parts), back = empty(m, c);
    be->ops->split_columns(be, split, x, parts);
    for (int p = 0; p < parts; p++)
        for (int64_t r = 0; r < m; r++)
            for (int64_t j = 0; j < c / parts; j++)
                CHECK(((float *)split.data)[(p * m + r) * (c / parts) + j] == ((float *)x.data)[r * c + p * (c / parts) + j]);
    be->ops->merge_columns(be, back, split, parts);
    CHECK(memcmp(back.data, x.data, (size_t)(m * c) * 4) == 0);
    free(x.data), free(split.data), free(back.data);
}

static void merged_partial_attention_equals_full(void)
{
    int64_t sq = 6, sk = 11, cut = 4, heads = 2, d = 8, c = heads * d;
    tensor q = random_tensor(sq, c, 4), k = random_tensor(sk, c, 5), v = random_tensor(sk, c, 6);
    tensor want = empty(sq, c), out = empty(sq, c), part = empty(sq, c);
    tensor lse = empty(heads, sq), part_lse = empty(heads, sq), want_lse = empty(heads, sq);
    be->ops->attention(be, want, want_lse, q, k, v, (int)heads);
    be->ops->attention(be, out, lse, q, tensor_row_slice(k, 0, cut), tensor_row_slice(v, 0, cut), (int)heads);
    be->ops->attention(be, part, part_lse, q, tensor_row_slice(k, cut, sk - cut), tensor_row_slice(v, cut, sk - cut),
                       (int)heads);
    be->ops->attention_merge(be, out, lse, part, part_lse, (int)heads);
    CHECK(test_max_abs_diff(out.data, want.data, sq * c) < 1e-5);
    CHECK(test_max_abs_diff(lse.data, want_lse.data, heads * sq) < 1e-5);
    free(q.data), free(k.data), free(v.data), free(want.data), free(out.data), free(part.data);
    free(lse.data), free(part_lse.data), free(want_lse.data);
}

int main(void)
{
    be = backend_cpu_create();
    two_phase_rms_norm_equals_rms_norm();
    split_and_merge_columns();
    merged_partial_attention_equals_full();
    backend_destroy(be);
    return test_finish("test_backend_parallel_ops");
}
