/* Process groups: the one seam between parallel code and a transport.
 *
 * Model code asks a group for collectives on tensors and never names MPI or
 * NCCL. Row-based collectives treat tensors as [rows, cols] matrices and move
 * whole rows; blocks are laid out in group-rank order. A group of one rank
 * needs no transport at all (pg_create_self), so serial code runs the same
 * path. Every op returns 0, or -1 with the error naming the group and rank. */
#ifndef MOEDIT_PARALLEL_PROCESS_GROUP_H
#define MOEDIT_PARALLEL_PROCESS_GROUP_H

#include "backend/backend.h"

typedef struct process_group process_group;

typedef struct pg_ops {
    /* t = sum over the group of t (elementwise), in place. */
    int (*all_reduce_sum)(process_group *pg, tensor t);
    /* t = max over the group of t (elementwise, F32), in place: the amax of
     * a row split over ranks (FP8 activations, parallel/fp8_rows.h). */
    int (*all_reduce_max)(process_group *pg, tensor t);
    /* out = rows of `in` from every rank, concatenated in rank order;
     * rows[r] rows come from rank r (tensor `in` holds rows[rank]). */
    int (*all_gather_rows)(process_group *pg, tensor out, tensor in, const int64_t *rows);
    /* Rank r sends send_rows[q] consecutive rows of `in` to rank q (blocks in
     * q order) and receives recv_rows[q] rows from q into `out` (q order). */
    int (*all_to_all_rows)(process_group *pg, tensor out, const int64_t *recv_rows, tensor in,
                           const int64_t *send_rows);
    /* The same all-to-all, started beside the work queued after it: it runs
     * once the work queued before it is done, and `out` is ready for work
     * queued after wait(ticket). Both may be NULL (use pg_all_to_all_start
     * and pg_wait, which then run it at once). At most PG_STARTED_MAX started
     * and not waited for. */
    int (*all_to_all_rows_start)(process_group *pg, tensor out, const int64_t *recv_rows, tensor in,
                                 const int64_t *send_rows, int *ticket);
    int (*wait)(process_group *pg, int ticket);
    /* Sends `send` to rank `to` while receiving `recv` from rank `from`;
     * either peer may be -1 (nothing sent, or nothing received). */
    int (*send_recv)(process_group *pg, tensor send, int to, tensor recv, int from);
    /* The same, started as all_to_all_rows_start is (may be NULL). */
    int (*send_recv_start)(process_group *pg, tensor send, int to, tensor recv, int from, int *ticket);
    int (*broadcast)(process_group *pg, tensor t, int root);
    void (*destroy)(process_group *pg);
} pg_ops;

struct process_group {
    const pg_ops *ops;
    const char *name; /* "tp", "ulysses", ... for messages */
    int rank, size;
    int world_rank;
    backend *be; /* the device the tensors live on */
    void *impl;
};

/* A group of this rank alone. */
process_group *pg_create_self(const char *name, int world_rank, backend *be);

void pg_destroy(process_group *pg);

/* all_to_all_rows (send_recv) started beside later work where the group can
 * (NCCL: on a stream of its own, so the exchange overlaps the kernels queued
 * after it), else done at once; pg_wait(ticket) orders later work after it.
 * Started exchanges of a group run one after the other, in the order
 * started; no other group's collective may run before they are waited for
 * (NCCL does not promise progress for two communicators at once). */
#define PG_STARTED_MAX 64
int pg_all_to_all_start(process_group *pg, tensor out, const int64_t *recv_rows, tensor in, const int64_t *send_rows,
                        int *ticket);
int pg_send_recv_start(process_group *pg, tensor send, int to, tensor recv, int from, int *ticket);
int pg_wait(process_group *pg, int ticket);

#endif
