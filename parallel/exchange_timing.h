/* How long a NCCL group's started exchanges ran and how long the compute
 * stream stood waiting for them (MOEDIT_EXCHANGE_TIMING=on): the overlap
 * that pg_wait's stream wait hides from any host-side timer. Each exchange
 * gets timing events on its own stream at its start and end, and one on the
 * compute stream where the stream is told to wait for it; the compute stream
 * stalled for end - wait when that is positive. Events are read back when
 * their ticket comes round again and at the end, never in between, so the
 * run keeps its overlap. One line per group goes to stderr when the group is
 * destroyed. Built with the NCCL process groups (parallel/pg_nccl.c). */
#ifndef MOEDIT_PARALLEL_EXCHANGE_TIMING_H
#define MOEDIT_PARALLEL_EXCHANGE_TIMING_H

#include "parallel/process_group.h"

#include <cuda_runtime.h>
#include <stdint.h>

typedef struct exchange_timing {
    int on;
    cudaEvent_t base, start[PG_STARTED_MAX], end[PG_STARTED_MAX], wait[PG_STARTED_MAX];
    int started[PG_STARTED_MAX], waited[PG_STARTED_MAX];
    double running_ms, waiting_ms;
    int64_t exchanges, waits;
} exchange_timing;

/* Reads the switch; when on, makes the events and marks time zero on `compute`. */
void exchange_timing_init(exchange_timing *t, cudaStream_t compute);
/* Exchange `ticket` begins on `side` (after its wait for the compute stream). */
void exchange_timing_start(exchange_timing *t, int ticket, cudaStream_t side);
/* ... and ends there. */
void exchange_timing_end(exchange_timing *t, int ticket, cudaStream_t side);
/* The compute stream is about to wait for it. */
void exchange_timing_wait(exchange_timing *t, int ticket, cudaStream_t compute);
/* Prints the group's line (after every exchange has ended) and frees the events. */
void exchange_timing_report(exchange_timing *t, const char *group, int rank);

#endif
