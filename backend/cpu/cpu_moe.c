/* MoE gate and dispatch on the CPU backend; see cpu_moe.h. */
#include "backend/cpu/cpu_moe.h"

#include "backend/moe_gate.h"

#include <assert.h>

void cpu_moe_route(backend *be, tensor experts, tensor weights, tensor logits, int forced)
{
    (void)be;
    int64_t rows = tensor_rows(&logits);
    int n = (int)tensor_cols(&logits), k = (int)tensor_cols(&experts);
    assert(logits.dtype == DTYPE_F32 && experts.dtype == DTYPE_I32 && tensor_rows(&experts) == rows);
    float *probs = logits.data, *w = weights.data;
    int32_t *chosen = experts.data;
    /* Rows are independent; threads help wherever the launcher leaves cores. */
#pragma omp parallel for if (rows > 4096)
    for (int64_t i = 0; i < rows; i++) moe_gate_row(probs + i * n, n, k, forced, chosen + i * k, w + i * k);
}

void cpu_moe_dispatch(backend *be, tensor rows, tensor slot_weights, tensor positions, tensor offsets, tensor experts,
                      tensor weights, tensor bucket, int buckets)
{
    (void)be;
    int64_t slots = tensor_numel(&experts);
    int k = (int)tensor_cols(&experts);
    const int32_t *chosen = experts.data, *map = bucket.data;
    const float *w = weights.data;
    int32_t *row_of = rows.data, *start = offsets.data, *position = positions.data;
    float *weight_of = slot_weights.data;
    assert(tensor_numel(&offsets) == buckets + 1 && tensor_numel(&rows) == slots);
    for (int b = 0; b <= buckets; b++) start[b] = 0;
    for (int64_t i = 0; i < slots; i++) start[(map ? map[chosen[i]] : chosen[i]) + 1]++;
    for (int b = 0; b < buckets; b++) start[b + 1] += start[b];
    int32_t fill[MOE_MAX_BUCKETS];
    assert(buckets <= MOE_MAX_BUCKETS);
    for (int b = 0; b < buckets; b++) fill[b] = start[b];
    for (int64_t i = 0; i < slots; i++) {
        int32_t at = fill[map ? map[chosen[i]] : chosen[i]]++;
        row_of[at] = (int32_t)(i / k);
        weight_of[at] = w[i];
        position[i] = at;
    }
}

void cpu_combine_rows(backend *be, tensor y, tensor x, tensor positions, tensor weight, int64_t first)
{
    (void)be;
    int64_t rows = tensor_rows(&y), cols = tensor_cols(&y), held = tensor_rows(&x);
    assert(first >= 0 && tensor_numel(&weight) >= first + held);
    int k = (int)tensor_cols(&positions);
    assert(k <= MOE_MAX_BUCKETS && tensor_rows(&positions) == rows);
    const int32_t *at = positions.data;
    const float *in = x.data, *w = weight.data;
    float *out = y.data;
    /* Rows are independent: each adds its own slots, ascending by position. */
#pragma omp parallel for
    for (int64_t r = 0; r < rows; r++) {
        int32_t order[MOE_MAX_BUCKETS];
        for (int j = 0; j < k; j++) { /* insertion sort: k is small */
            int32_t p = at[r * k + j];
            int i = j;
            while (i > 0 && order[i - 1] > p) {
                order[i] = order[i - 1];
                i--;
            }
            order[i] = p;
        }
        float *dst = out + r * cols;
        for (int j = 0; j < k; j++) {
            int64_t p = order[j];
            if (p < first || p >= first + held) continue; /* another rank's slot */
            const float *src = in + (p - first) * cols;
            for (int64_t c = 0; c < cols; c++) dst[c] += w[p] * src[c];
        }
    }
}
