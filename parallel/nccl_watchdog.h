/* The collective timeout for NCCL groups (GPU ranks); the CPU side is
 * parallel/mpi_wait.h.
 *
 * NCCL collectives are queued on a CUDA stream and the host blocks later,
 * in a stream synchronisation, where no MPI-style polling can look at the
 * clock. So each NCCL group records an event after every collective it
 * queues (with the time and the operation), and one watchdog thread per
 * process wakes every second: a group whose last collective is still not
 * done MOEDIT_COLLECTIVE_TIMEOUT seconds after it was queued (a rank of the
 * group stopped, hung or died; a GPU reaches what its host queued far sooner
 * than the timeout's default of 600 s), or whose communicator reports an asynchronous error
 * (ncclCommGetAsyncError), ends the run: one line on stderr naming the
 * rank, the group and the operation (the main thread is blocked and cannot
 * report it), ncclCommAbort so the kernels waiting for the missing rank
 * return, then SIGTERM, whose handler removes temporary outputs; the
 * launcher ends the other ranks. Waiting ranks fire half a second apart in
 * rank order, so the lowest one's line is normally the only one. */
#ifndef MOEDIT_PARALLEL_NCCL_WATCHDOG_H
#define MOEDIT_PARALLEL_NCCL_WATCHDOG_H

#include <cuda_runtime.h>
#include <nccl.h>

typedef struct nccl_watch nccl_watch;

/* Watches `comm` (group `name`, on the current CUDA device); NULL with the
 * error set when the event or thread cannot be made. With the timeout off
 * (MOEDIT_COLLECTIVE_TIMEOUT=0) it watches asynchronous errors only. */
nccl_watch *nccl_watch_start(ncclComm_t comm, const char *name, int world_rank);

/* After queueing `operation` ("the all-reduce") on `stream`. */
void nccl_watch_queued(nccl_watch *watch, const char *operation, cudaStream_t stream);

/* Before the communicator is destroyed. */
void nccl_watch_stop(nccl_watch *watch);

#endif
