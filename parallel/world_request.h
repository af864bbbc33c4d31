/* The request each rank was given, compared over the ranks at the start.
 *
 * Every rank of a run must do the same work: started by an MPMD launcher
 * line with other steps, sizes, seeds, prompts, layouts or models per rank,
 * the ranks would meet in collectives of different shapes (MPI_ERR_TRUNCATE,
 * a hang) or, worse, finish with a picture that matches neither request.
 * The moedit program therefore lists what it was asked as named items, in a
 * fixed order (the command, every option's parsed value, the prompts read
 * from a file, a digest of the model folder's files), each kept as a 64-bit
 * FNV-1a hash of its name and value and a short form of the value for
 * messages. world_request_compare all-reduces the hashes' minimum and
 * maximum item by item: where they differ, the ranks exchange the short
 * values of that first differing item, and every rank fails with one
 * message naming it and which ranks had which value. */
#ifndef MOEDIT_PARALLEL_WORLD_REQUEST_H
#define MOEDIT_PARALLEL_WORLD_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#define WORLD_REQUEST_MAX_ITEMS 96

/* Adds an item: its name ("--num-inference-steps") and value (NULL: "(none)");
 * the value is hashed whole and shown cut to about 60 bytes. Past
 * WORLD_REQUEST_MAX_ITEMS items the rest are folded into the last one. */
void world_request_add(const char *name, const char *value);

/* Adds an item whose value is already a digest (a prompt file's lines, a
 * model folder's files); `shown` is what a message prints for it. */
void world_request_add_digest(const char *name, uint64_t digest, const char *shown);

/* 64-bit FNV-1a of `size` bytes, continuing from `hash` (start with
 * WORLD_REQUEST_HASH_START). */
#define WORLD_REQUEST_HASH_START 14695981039346656037ull
uint64_t world_request_hash(uint64_t hash, const void *bytes, size_t size);

/* Collective over the world (MPI): 0 when every rank listed the same items,
 * else -1 on every rank with "the ranks were not given the same request:
 * --num-inference-steps is 2 on rank 0 and 3 on rank 1; ..." */
int world_request_compare(int rank, int size);

/* Forgets the items (a later request starts empty). */
void world_request_clear(void);

#endif
