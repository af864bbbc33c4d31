/* The images of a data-parallel layout's replicas, brought to rank 0.
 *
 * On a --data-parallel-size K layout moedit_generate deals job j to replica
 * j % K, and each replica's first rank writes that replica's files into its
 * own folder. After the run (every rank agreed it succeeded), each replica
 * r > 0 in turn sends rank 0 its files: a header [count, then (bytes, seed,
 * job) per file] and the bytes, each by a broadcast from the replica's first
 * rank over the world (the one group every rank holds; the other ranks take
 * part and drop them). Rank 0 writes them into its folder and reports each
 * as the run's on_image hook would, with its job (r + i * K, unless a job
 * before it was cancelled and made no file). */
#ifndef MOEDIT_SERVE_SERVE_REPLICAS_H
#define MOEDIT_SERVE_SERVE_REPLICAS_H

#include "moedit.h"
#include "parallel/process_group.h"
#include "parallel/world.h"

#include <stdint.h>

typedef void (*serve_image_fn)(void *user, int job, const char *path, uint64_t seed);

/* Every rank of the world; r is this rank's result of the run and jobs
 * (on a replica's first rank) the job of each of its files; folder and id
 * name rank 0's copies (folder/replica-ID-JOB.png). 0, or -1 with the error
 * set (a replica that could not read its files back: on every rank). */
int serve_replicas_gather(const world *w, process_group *world_group, int replicas, const moedit_generate_result *r,
                          const int *jobs, const char *folder, uint64_t id, serve_image_fn on_image, void *user);

#endif
