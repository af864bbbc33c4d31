/* The MoE gate's per-row arithmetic, compiled for the host (CPU backend) and
 * for the device (CUDA backend) from this one definition, so both backends
 * choose experts by the same rule: softmax of the row's logits (max-shifted,
 * the normaliser summed in double), the k most probable experts, ties to the
 * lower index, listed ascending by index (captures compare equal whatever
 * order the selection found them in). */
#ifndef MOEDIT_BACKEND_MOE_GATE_H
#define MOEDIT_BACKEND_MOE_GATE_H

#include <math.h>
#include <stdint.h>

/* Dispatch buckets (experts, or (rank, expert) pairs under expert
 * parallelism) at most; configs allow at most this many experts. */
#define MOE_MAX_BUCKETS 1024

#ifdef __CUDACC__
#define MOE_GATE_FN static inline __host__ __device__
#else
#define MOE_GATE_FN static inline
#endif

MOE_GATE_FN void moe_gate_softmax(float *row, int n)
{
    float max = row[0];
    for (int e = 1; e < n; e++) max = row[e] > max ? row[e] : max;
    double sum = 0;
    for (int e = 0; e < n; e++) {
        row[e] = expf(row[e] - max);
        sum += row[e];
    }
    for (int e = 0; e < n; e++) row[e] = (float)(row[e] / sum);
}

/* chosen[0..k) = the experts of the k highest of scores[0..n) (k <= n).
 * Few experts: expert e is chosen when fewer than k experts beat it (a
 * higher score, or the same and a lower index), a total order, so exactly k
 * are; n x n comparisons, no scratch. Many: k passes for the best not yet
 * chosen, each inserted in order. */
MOE_GATE_FN void moe_top_k_ascending(const float *scores, int n, int k, int32_t *chosen)
{
    if (n <= 16) {
        int out = 0;
        for (int e = 0; e < n; e++) {
            int beaten_by = 0;
            for (int j = 0; j < n; j++) beaten_by += scores[j] > scores[e] || (scores[j] == scores[e] && j < e);
            if (beaten_by < k) chosen[out++] = e;
        }
        return;
    }
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int e = 0; e < n; e++) {
            int taken = 0;
            for (int t = 0; t < j; t++) taken |= chosen[t] == e;
            if (!taken && (best < 0 || scores[e] > scores[best])) best = e;
        }
        int at = j; /* insert keeping chosen[0..j] ascending */
        while (at > 0 && chosen[at - 1] > best) {
            chosen[at] = chosen[at - 1];
            at--;
        }
        chosen[at] = best;
    }
}

/* One row: probs[0..n) <- softmax of the logits it holds; experts[0..k) <-
 * the top k unless `forced` (a replay: experts hold them already);
 * weights[0..k) <- their probabilities. */
MOE_GATE_FN void moe_gate_row(float *probs, int n, int k, int forced, int32_t *experts, float *weights)
{
    moe_gate_softmax(probs, n);
    if (!forced) moe_top_k_ascending(probs, n, k, experts);
    for (int j = 0; j < k; j++) weights[j] = probs[experts[j]];
}

#endif
