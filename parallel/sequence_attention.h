/* Attention over the sequence-parallel ranks: the Ulysses all-to-all and the
 * ring pass of keys and values (parallel/sequence_attention.c).
 *
 * A rank holds rows [S_local, C_local] of q, k and v (all of its tensor-
 * parallel heads) and wants out[q rows, C_local] = attention of its queries
 * over every rank's keys. Three phases, so that a caller can interleave
 * several samples' (one sample's exchange runs while another computes):
 *   start    exchanges q, k and v (Ulysses: tokens -> heads),
 *   compute  waits for them, attends (ring: around the ring, merging by
 *            log-sum-exp) and starts the exchange back,
 *   end      waits for it and writes out.
 * The scratch arena must keep what the phases allocate until end. */
#ifndef MOEDIT_PARALLEL_SEQUENCE_ATTENTION_H
#define MOEDIT_PARALLEL_SEQUENCE_ATTENTION_H

#include "backend/backend.h"
#include "backend/arena.h"
#include "parallel/process_group.h"

/* Most ranks of a sequence-parallel group (ulysses x ring). */
#define SEQUENCE_PARALLEL_MAX_RANKS 1024

/* What the phases run on. query_rows[r] and key_rows[r] are the rows each
 * rank r of the ulysses x ring group holds (rank = ring slot * ulysses + j),
 * the only thing the exchanges need to know of the sequence. */
typedef struct sequence_attention {
    backend *be;
    arena *scratch;
    process_group *ulysses, *ring;
    int heads;              /* heads attention sees: this rank's tensor-parallel heads / ulysses */
    int overlap;            /* exchanges may stay in flight (sequence_attention_overlaps) */
    const int64_t *query_rows, *key_rows;
} sequence_attention;

typedef struct sequence_attention_state {
    tensor q, k, v; /* as attention sees them: this rank's heads of every rank's tokens under Ulysses */
    tensor out;     /* the caller's [q rows, C_local] */
    tensor packed;  /* Ulysses: the outputs on their way back, as column blocks */
    int ticket[4];  /* started exchanges of q, k, v and the output (-1: none or done) */
} sequence_attention_state;

int sequence_attention_start(const sequence_attention *sa, sequence_attention_state *st, tensor out, tensor q,
                             tensor k, tensor v);
int sequence_attention_compute(const sequence_attention *sa, sequence_attention_state *st);
int sequence_attention_end(const sequence_attention *sa, sequence_attention_state *st);

/* 1 when a started exchange may stay in flight beside later work: Ulysses
 * with no tensor or ring parallelism. An exchange left running beside another
 * NCCL communicator's collective (the tp all-reduces, the ring's passing) may
 * wait on it, so otherwise every exchange is waited for as it starts. */
int sequence_attention_overlaps(const process_group *tp, const process_group *ulysses, const process_group *ring);

#endif
