/* Waiting for the other ranks without spinning forever (CPU ranks, MPI).
 *
 * A blocking MPI collective polls at full CPU until every member arrives,
 * and forever if one never does (a stopped, hung or dead rank). moedit's MPI
 * collectives therefore first wait for their members to arrive with a
 * nonblocking barrier, then run as nonblocking collectives (pg_mpi.c; the
 * world's agreements are nonblocking all-reduces), all polled here: a spin
 * (members normally arrive within microseconds of each other; a transfer
 * between arrived members spins longer), then naps that grow to a few
 * milliseconds, so a rank waiting for a late peer uses almost no CPU.
 *
 * A wait longer than the collective timeout (MOEDIT_COLLECTIVE_TIMEOUT
 * seconds, default 600; 0 or "off": none) ends the run: the waiting rank asks
 * every rank of the world whether it is alive and waiting too (a probe on a
 * communicator of its own, answered by every rank inside any wait), and
 * after a grace of up to 2 s the ranks that did not answer are the ones not
 * reaching their collectives. The lowest rank that is waiting reports them
 * in one line, "rank 1 did not reach the all-reduce of process group tp
 * within 600 s ...", and the run is aborted; the other waiting ranks stay
 * quiet. A peer that arrives during the grace lets the wait end normally. */
#ifndef MOEDIT_PARALLEL_MPI_WAIT_H
#define MOEDIT_PARALLEL_MPI_WAIT_H

#include <mpi.h>

#define MPI_WAIT_DEFAULT_TIMEOUT 600.0

/* Called by world_init after MPI_Init (collective over the world): makes
 * the probes' communicator and reads MOEDIT_COLLECTIVE_TIMEOUT (a bad value
 * is an error naming it). */
int mpi_wait_init(void);
void mpi_wait_finalize(void);

/* Seconds a collective may wait for its members (0: no limit). */
double mpi_wait_timeout(void);

/* What a wait is for, to name it: "the all-reduce" of "process group tp"
 * over the given world ranks (members NULL: the whole world); and how long
 * to poll without naps (0: MPI_WAIT_SPIN_SECONDS; a collective whose
 * members have all arrived polls longer, MPI_WAIT_TRANSFER_SPIN_SECONDS, so
 * a large transfer progresses at full speed). */
typedef struct mpi_wait_site {
    const char *operation;
    const char *group;
    const int *members;
    int member_count;
    double spin_seconds;
} mpi_wait_site;

#define MPI_WAIT_SPIN_SECONDS 0.01
#define MPI_WAIT_TRANSFER_SPIN_SECONDS 1.0

/* Waits for `request` (MPI_Test, spin then naps); 0 when it completed, -1
 * with the error set when it waited past the timeout (see the top; the
 * error is marked quiet on every waiting rank but the one that reports). */
int mpi_wait(MPI_Request *request, const mpi_wait_site *site);

/* Work for this rank while it naps in a wait (NULL: none): moedit serve's
 * rank 0 sends its cancel notices (parallel/world_notice.h) while it waits
 * for the replicas' end of a run. Called between the naps only (not while
 * the wait spins), on the thread that waits; it may send but not wait. */
void mpi_wait_set_idle(void (*idle)(void *user), void *user);

/* Answers every probe that arrived (this rank is alive and waiting): for
 * a rank that waits outside mpi_wait (world_broadcast_idle's idle ranks). */
void mpi_wait_answer_probes(void);

/* 1 once any wait of this process gave up (ran past the timeout and
 * failed): a rank is stopped, hung or dead, and the world cannot run
 * another collective (moedit serve then stops rather than serve on). */
int mpi_wait_gave_up(void);

/* All members of `comm` have arrived here (a nonblocking barrier waited
 * for by mpi_wait). */
int mpi_wait_arrival(MPI_Comm comm, const mpi_wait_site *site);

#endif
