/* Routing capture and replay.
 *
 * Capture stores, for every denoising step, every guidance branch and every
 * MoE layer, the experts each token chose: I32 [tokens, K], ascending per
 * token. Replay forces those experts; the gate still supplies their weights
 * (the softmax scores of the forced experts), so two runs that differ only in
 * layout use identical routing and can be compared tightly even where two
 * experts' scores nearly tie.
 *
 * File format: safetensors, one tensor per record named
 * "step<S>.branch<B>.layer<L>". */
#ifndef MOEDIT_MOE_ROUTING_H
#define MOEDIT_MOE_ROUTING_H

#include <stdint.h>

typedef enum { ROUTING_FREE = 0, ROUTING_CAPTURE, ROUTING_REPLAY } routing_mode;

typedef struct routing_record {
    int step, branch, layer;
    int64_t rows;
    int top_k;
    int32_t *experts; /* [rows, top_k] */
} routing_record;

typedef struct moe_routing {
    routing_mode mode;
    int step;   /* set by the pipeline before each transformer call */
    routing_record *records;
    int count, capacity;
    char source[256]; /* file, for error messages */
} moe_routing;

void moe_routing_init(moe_routing *r, routing_mode mode);
void moe_routing_free(moe_routing *r);

/* Capture: rows [first_row, first_row + rows) of the layer's total_rows, in
 * the record of the current step and the given branch. */
int moe_routing_store(moe_routing *r, int branch, int layer, int64_t first_row, int64_t rows, int64_t total_rows, int top_k,
                      const int32_t *experts);

/* Replay: the experts of rows [first_row, first_row + rows); fails naming the
 * file, step, branch and layer when the record is missing or too short. */
int moe_routing_lookup(const moe_routing *r, int branch, int layer, int64_t first_row, int64_t rows, int top_k,
                       const int32_t **experts);

int moe_routing_save(const moe_routing *r, const char *path);
int moe_routing_load(moe_routing *r, const char *path);

#endif
