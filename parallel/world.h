/* The world of ranks: bootstrap from the launcher, and the groups of a
 * layout.
 *
 * Under mpirun or srun (OpenMPI, MPICH, PMI/PMIx environments) the world is
 * MPI_COMM_WORLD; started directly, it is one rank and MPI is never touched,
 * so a serial run needs no launcher. world_abort ends every rank promptly
 * after an error on one of them (MPI_Abort), so no rank hangs waiting for a
 * peer that has already failed. */
#ifndef MOEDIT_PARALLEL_WORLD_H
#define MOEDIT_PARALLEL_WORLD_H

#include "parallel/layout.h"
#include "parallel/process_group.h"

#include <stdint.h>

typedef struct world {
    int rank, size;
    int using_mpi;
    /* Drawn from the OS random source (getrandom, else /dev/urandom) by rank
     * 0 at bootstrap and broadcast: the same on every rank, for runs that ask
     * for a random seed. */
    uint64_t random_seed;
    /* The host of each rank, numbered from 0 in the order of their first
     * rank (parallel/world_hosts.h), and how many there are; NULL and 1
     * without a launcher. */
    int *host_of;
    int hosts;
} world;

int world_init(world *w, int *argc, char ***argv);
void world_finalize(world *w);
void world_abort(const world *w, int code);

/* Until the first group is created, a rank's failure is its own (bad flags,
 * a missing model file): no rank waits on another yet. The first group's
 * creation therefore begins with this agreement, and main() calls it with
 * `status` -1 when a rank fails before getting there (or with 0 when a
 * command never creates a group): every rank learns whether any failed, all
 * return -1 if so, and the error is marked agreed (error_mark_agreed) so
 * that no rank is aborted and one rank prints one line: the lowest failing
 * rank's message, with "[rank N] " before it unless every rank failed with
 * the same message.
 * After the first agreement it returns `status` unchanged (a later failure
 * is one rank's and world_abort ends the others).
 *
 * An earlier agreement comes first: the request agreement
 * (world_agree_request), which also compares what every rank was asked
 * (parallel/world_request.h; an empty list where nothing was added). The
 * moedit program makes it as soon as a command's options are parsed, before
 * loading anything; world_agree makes it first while it is pending. A
 * failure agreed there ends every later agreement. */
int world_agree(const world *w, int status);
int world_agree_request(const world *w, int status);

/* The run's closing agreement, made by main() on every rank that was not
 * aborted, unless the failure was agreed before: after the first agreement,
 * a failure that every rank exchanging data with the failing one met alike
 * (error_is_shared: none waits in a collective for another) is reported
 * here once, as world_agree reports, instead of aborting the run; ranks
 * that succeeded (another data-parallel replica) learn of it and return -1
 * too, their error marked agreed and silent. */
int world_agree_end(const world *w, int status);

/* An agreement that also carries rank 0's values[0..count) (count <=
 * WORLD_SHARE_VALUES) to every rank: a decision made once (a file name, a
 * seed) that every rank must follow. It is the same round as the others,
 * with the values in its reduction: while the request agreement is pending
 * it is that one (the comparison follows); else a round of its own that
 * leaves the first group's agreement pending (it does not use it up). Every
 * rank of the world calls it at the same point of the run, after checks
 * that may fail on some ranks: when one failed, -1 everywhere with the
 * error agreed (one line); when none failed, the values arrive. Returns 0
 * or -1. */
#define WORLD_SHARE_VALUES 2
int world_agree_share(const world *w, int status, uint64_t *values, int count);

/* The groups of a layout, for this rank: every kind is a real group (of
 * one rank when its degree is 1). groups[GROUP_EP] is NULL when EP is off. */
typedef struct parallel_context {
    parallel_layout layout;
    process_group *groups[GROUP_KINDS];
} parallel_context;

int parallel_context_init(parallel_context *ctx, const world *w, parallel_degrees degrees, backend *be);
void parallel_context_free(parallel_context *ctx);

/* One group of every rank of the world on `be`'s transport (a self group
 * for one rank): for work split over all ranks outside a layout, such as
 * `moedit bench-vae` under mpirun. */
process_group *world_group(const world *w, const char *name, backend *be);

/* n bytes from world rank 0 to every rank, waited for by polling with 1 ms
 * sleeps rather than MPI's busy wait: for ranks that idle between pieces of
 * work for a long time (moedit serve's ranks between requests), at the cost
 * of up to a millisecond. Those receiving wait without limit; rank 0, which
 * sends work and so is not idle, waits at most the collective timeout
 * (MOEDIT_COLLECTIVE_TIMEOUT, parallel/mpi_wait.h) for a receiver that
 * never comes. Collective over the world, outside any layout. */
int world_broadcast_idle(const world *w, void *bytes, int64_t n);

/* 1 once a collective of this rank gave up waiting for a stopped, hung or
 * dead rank (MOEDIT_COLLECTIVE_TIMEOUT): the world cannot go on. */
int world_lost_a_rank(const world *w);

/* MPI process group over the given world ranks (ascending, includes this
 * rank); collective over those ranks only. CPU tensors (F32 or I32). */
process_group *pg_create_mpi(const char *name, const int *world_ranks, int count, int world_rank, backend *be);

/* NCCL process group for tensors on the CUDA backend `be` (host tensors go
 * through MPI); built only with CUDA. */
process_group *pg_create_nccl(const char *name, const int *world_ranks, int count, int world_rank, backend *be);

#endif
