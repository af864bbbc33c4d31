/* Balanced expert placement from routing; see moe_placement.h. */
#include "moe/moe_placement.h"

#include "core/error.h"
#include "moe/moe_routing.h"

#include <stdlib.h>
#include <string.h>

#define MAX_DEALS 100000

/* One layer: per call, the rows each expert got. */
typedef struct layer_counts {
    int64_t *rows; /* [calls, experts] */
    int calls, experts, ranks;
} layer_counts;

/* Sum over calls of the busiest rank's rows when rank[e] holds expert e. */
static int64_t cost(const layer_counts *c, const int *rank)
{
    int64_t total = 0, load[64];
    for (int call = 0; call < c->calls; call++) {
        memset(load, 0, sizeof load);
        for (int e = 0; e < c->experts; e++) load[rank[e]] += c->rows[(int64_t)call * c->experts + e];
        int64_t most = 0;
        for (int r = 0; r < c->ranks; r++) most = load[r] > most ? load[r] : most;
        total += most;
    }
    return total;
}

/* Every deal of experts e.. to ranks with room (ranks in first-use order, so
 * each deal counts once), keeping the cheapest in best. */
static void deal(const layer_counts *c, int e, int *rank, int *room, int used, int *best, int64_t *best_cost)
{
    if (e == c->experts) {
        int64_t value = cost(c, rank);
        if (value < *best_cost) *best_cost = value, memcpy(best, rank, (size_t)c->experts * sizeof *rank);
        return;
    }
    for (int r = 0; r < c->ranks && r <= used; r++) {
        if (!room[r]) continue;
        rank[e] = r, room[r]--;
        deal(c, e + 1, rank, room, used + (r == used), best, best_cost);
        room[r]++;
    }
}

/* The number of deals: experts! / (per!^ranks ranks!), in double (64! fits). */
static double deals(int experts, int ranks)
{
    double n = 1;
    int per = experts / ranks;
    for (int i = 2; i <= experts; i++) n *= i;
    for (int r = 0; r < ranks; r++)
        for (int i = 2; i <= per; i++) n /= i;
    for (int i = 2; i <= ranks; i++) n /= i;
    return n;
}

/* Greedy: experts by total rows, heaviest first, each to the lightest rank with room. */
static void deal_greedy(const layer_counts *c, int *rank)
{
    int64_t total[64] = {0}, load[64] = {0};
    int order[64], room[64];
    for (int e = 0; e < c->experts; e++) {
        order[e] = e;
        for (int call = 0; call < c->calls; call++) total[e] += c->rows[(int64_t)call * c->experts + e];
    }
    for (int i = 1; i < c->experts; i++) /* insertion sort, heaviest first */
        for (int j = i; j > 0 && total[order[j]] > total[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1], order[j - 1] = t;
        }
    for (int r = 0; r < c->ranks; r++) room[r] = c->experts / c->ranks;
    for (int i = 0; i < c->experts; i++) {
        int best = -1;
        for (int r = 0; r < c->ranks; r++)
            if (room[r] && (best < 0 || load[r] < load[best])) best = r;
        rank[order[i]] = best, room[best]--, load[best] += total[order[i]];
    }
}

/* A capture of this model routes every one of its MoE layers at every step:
 * a file that names a layer past the last (or, found while counting, misses
 * one) was written by another model. The placement would only cost speed,
 * but silently. */
static int no_layer_beyond(const moe_routing *routing, const char *path, int layers)
{
    for (int i = 0; i < routing->count; i++)
        if (routing->records[i].layer >= layers)
            return error_set("expert placement: %s routes layer %d, but the model has %d MoE layers; capture it with "
                             "this model", path, routing->records[i].layer, layers);
    return 0;
}

int moe_placement_balanced(const char *path, int layers, int experts, int ep_size, int32_t *order, double *shares)
{
    if (experts > 64 || ep_size < 1 || experts % ep_size)
        return error_set("expert placement: %d experts over %d ranks is not supported (at most 64, evenly)", experts,
                         ep_size);
    moe_routing routing;
    moe_routing_init(&routing, ROUTING_REPLAY);
    if (moe_routing_load(&routing, path)) return error_prefix("expert placement");
    int status = no_layer_beyond(&routing, path, layers);
    layer_counts c = {calloc((size_t)routing.count * experts + 1, sizeof(int64_t)), 0, experts, ep_size};
    if (!c.rows && status == 0) status = error_set("out of memory reading %s", path);
    for (int l = 0; l < layers && status == 0; l++) {
        c.calls = 0;
        for (int i = 0; i < routing.count && status == 0; i++) {
            const routing_record *rec = &routing.records[i];
            if (rec->layer != l) continue;
            int64_t *row = c.rows + (int64_t)c.calls++ * experts;
            memset(row, 0, (size_t)experts * sizeof *row);
            for (int64_t k = 0; k < rec->rows * rec->top_k; k++) {
                int e = rec->experts[k];
                if (e < 0 || e >= experts) {
                    status = error_set("expert placement: %s names expert %d in layer %d, the model has %d", path, e,
                                       l, experts);
                    break;
                }
                row[e]++;
            }
        }
        if (status == 0 && c.calls == 0)
            status = error_set("expert placement: %s has no routing for layer %d of the model's %d MoE layers; "
                               "capture it with this model", path, l, layers);
        if (status) break;
        int rank[64], best[64], room[64];
        for (int r = 0; r < ep_size; r++) room[r] = experts / ep_size;
        if (deals(experts, ep_size) <= MAX_DEALS) {
            int64_t best_cost = INT64_MAX;
            deal(&c, 0, rank, room, 0, best, &best_cost);
        } else {
            deal_greedy(&c, best);
        }
        int32_t *out = order + (int64_t)l * experts, at = 0;
        for (int r = 0; r < ep_size; r++) /* rank r's experts, in id order */
            for (int e = 0; e < experts; e++)
                if (best[e] == r) out[at++] = e;
        if (shares) {
            int64_t load[64] = {0}, total = 0;
            for (int call = 0; call < c.calls; call++)
                for (int e = 0; e < experts; e++) load[best[e]] += c.rows[(int64_t)call * experts + e];
            for (int r = 0; r < ep_size; r++) total += load[r];
            for (int r = 0; r < ep_size; r++) /* a layer of no rows: even shares */
                shares[(int64_t)l * ep_size + r] = total > 0 ? (double)load[r] / total : 1.0 / ep_size;
        }
    }
    free(c.rows);
    moe_routing_free(&routing);
    return status;
}

void moe_shared_split(const double *shares, int ranks, int top_k, int64_t expert_hidden, int64_t shared_hidden,
                      int64_t *bounds)
{
    /* Hidden units a token costs rank r: shares[r] * top_k * expert_hidden
     * routed plus its shared slice; equal on every rank when the slice is the
     * even total minus the routed part. Cumulative rounding keeps the sum. */
    int64_t step = shared_hidden >= 64 * 4 * (int64_t)ranks ? 64 : 8;
    if (shared_hidden % step || shared_hidden < step * ranks) { /* too narrow to move: even slices */
        for (int r = 0; r <= ranks; r++) bounds[r] = shared_hidden * r / ranks;
        return;
    }
    double routed = (double)top_k * (double)expert_hidden, even = (routed + (double)shared_hidden) / ranks, sum = 0;
    bounds[0] = 0;
    for (int r = 0; r < ranks; r++) {
        sum += even - shares[r] * routed;
        int64_t at = r == ranks - 1 ? shared_hidden : (int64_t)(sum / (double)step + 0.5) * step;
        int64_t lowest = bounds[r] + step, highest = shared_hidden - (int64_t)(ranks - 1 - r) * step;
        if (r < ranks - 1) at = at < lowest ? lowest : at > highest ? highest : at;
        bounds[r + 1] = at;
    }
}
