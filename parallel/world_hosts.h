/* Which host each rank of the world runs on.
 *
 * A host is a set of ranks that share memory: MPI_Comm_split_type with
 * MPI_COMM_TYPE_SHARED splits the launcher's world into them, whatever the
 * launcher (mpirun -H / --hostfile, srun). Each host is named by the lowest
 * world rank on it; the names are gathered, and hosts are numbered in the
 * order of their first rank, so host 0 holds rank 0.
 *
 * For tests only: MOEDIT_HOST_ID_FOR_TESTS, when set and not empty, names
 * this rank's host instead (its first WORLD_HOST_NAME_MAX - 1 characters),
 * so ranks of one machine can pose as several hosts, e.g. under Open MPI
 *   mpirun -np 2 -x MOEDIT_HOST_ID_FOR_TESTS=a prog : -np 2 -x MOEDIT_HOST_ID_FOR_TESTS=b prog
 * It changes only what the layout planner sees (parallel/layout_hosts.h),
 * not how cores and memory are shared among the ranks of the real machine. */
#ifndef MOEDIT_PARALLEL_WORLD_HOSTS_H
#define MOEDIT_PARALLEL_WORLD_HOSTS_H

#define WORLD_HOST_NAME_MAX 64

/* Collective over MPI_COMM_WORLD (after MPI_Init). Fills *host_of with a
 * malloc'd [world size] array of host numbers and *hosts with their count;
 * *local_ranks: the ranks sharing this rank's real machine (memory), which
 * the test override does not change. Returns 0, or -1 with the error set. */
int world_hosts_find(int **host_of, int *hosts, int *local_ranks);

#endif
