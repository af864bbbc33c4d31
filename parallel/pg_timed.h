/* A process group that times another: every collective is forwarded to the
 * wrapped group, and the wall time spent inside it, the number of calls and
 * the bytes this rank hands to it are added to a pg_timing that the caller
 * owns. moedit bench wraps every group of a layout this way to measure the
 * communication share of a run.
 *
 * On a device whose collectives are asynchronous (CUDA: NCCL on the
 * backend's stream) the backend is synchronised before and after each op, so
 * the time is the op's own and not the kernels queued before it; that also
 * removes the overlap of exchanges with computation (the Ulysses exchanges
 * of interleaved samples, the ring's passing, the shared expert beside the
 * EP all-to-all), so a timed GPU run is slower than an untimed one (moedit
 * bench times GPU collectives only when asked). On the CPU (MPI) nothing changes:
 * the time includes waiting for the slowest peer to arrive, so load
 * imbalance shows up as communication. */
#ifndef MOEDIT_PARALLEL_PG_TIMED_H
#define MOEDIT_PARALLEL_PG_TIMED_H

#include "parallel/process_group.h"

typedef struct pg_timing {
    double seconds;   /* wall time inside collectives */
    long long calls;
    double bytes;     /* bytes of the tensors this rank passed in */
} pg_timing;

/* Takes ownership of `inner` (destroying the wrapper destroys it). NULL with
 * the error set when out of memory; `inner` is then destroyed too. */
process_group *pg_create_timed(process_group *inner, pg_timing *timing);

#endif
