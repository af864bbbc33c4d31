/* Small notices from one rank to another, outside every collective: moedit
 * serve's rank 0 tells a data-parallel replica's first rank that a job's
 * client left, while that replica runs steps of its own (no collective
 * joins rank 0 and the replica then; rank 0 may be waiting for the run's
 * end). A notice is two int64 values on a communicator of its own, sent
 * eagerly (MPI_Send of 16 bytes never waits for the receiver) and taken by
 * the receiver when it polls (MPI_Iprobe), e.g. between its steps. Without
 * MPI (one rank) there is no one to notify: every call does nothing. */
#ifndef MOEDIT_PARALLEL_WORLD_NOTICE_H
#define MOEDIT_PARALLEL_WORLD_NOTICE_H

#include "parallel/world.h"

#include <stdint.h>

/* Collective over the world: opens the notices' communicator. 0, or -1 with the error set. */
int world_notice_open(const world *w);
/* Collective: drops the notices never taken, then closes it. */
void world_notice_close(void);

/* values[0..2) to world rank `to`; 0, or -1 with the error set. */
int world_notice_send(int to, const int64_t values[2]);
/* 1 with the oldest notice that arrived in values, else 0 (none waits). */
int world_notice_poll(int64_t values[2]);

#endif
