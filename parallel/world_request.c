/* The request each rank was given, compared over the ranks; see world_request.h. */
#include "parallel/world_request.h"

#include "core/error.h"
#include "parallel/mpi_wait.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_BYTES 48
#define SHOWN_BYTES 96
#define GATHER_MAX_RANKS 4096

typedef struct request_item {
    char name[NAME_BYTES];
    char shown[SHOWN_BYTES];
} request_item;

static request_item items[WORLD_REQUEST_MAX_ITEMS];
static uint64_t hashes[WORLD_REQUEST_MAX_ITEMS];
static int item_count;

uint64_t world_request_hash(uint64_t hash, const void *bytes, size_t size)
{
    const unsigned char *b = bytes;
    for (size_t i = 0; i < size; i++) hash = (hash ^ b[i]) * 1099511628211ull;
    return hash;
}

void world_request_add_digest(const char *name, uint64_t digest, const char *shown)
{
    uint64_t hash = world_request_hash(WORLD_REQUEST_HASH_START, name, strlen(name) + 1);
    hash = world_request_hash(hash, &digest, sizeof digest);
    if (hash == 0) hash = 1; /* 0 marks an absent item */
    if (item_count == WORLD_REQUEST_MAX_ITEMS) { /* fold into the last */
        hashes[item_count - 1] = world_request_hash(hashes[item_count - 1], &hash, sizeof hash);
        snprintf(items[item_count - 1].name, NAME_BYTES, "the options after the first %d", WORLD_REQUEST_MAX_ITEMS - 1);
        snprintf(items[item_count - 1].shown, SHOWN_BYTES, "digest %016llx", (unsigned long long)hashes[item_count - 1]);
        return;
    }
    snprintf(items[item_count].name, NAME_BYTES, "%s", name);
    snprintf(items[item_count].shown, SHOWN_BYTES, "%s", shown);
    hashes[item_count++] = hash;
}

void world_request_add(const char *name, const char *value)
{
    const char *v = value ? value : "";
    size_t length = strlen(v);
    uint64_t digest = value ? world_request_hash(WORLD_REQUEST_HASH_START, v, length + 1) : 0;
    char shown[SHOWN_BYTES];
    /* Quoted, or cut with its length and digest when long (the hash takes the whole value). */
    if (!value) snprintf(shown, sizeof shown, "(none)");
    else if (length + 2 < SHOWN_BYTES) snprintf(shown, sizeof shown, "'%s'", v);
    else snprintf(shown, sizeof shown, "'%.*s...' (%zu bytes, #%08x)", 48, v, length, (unsigned)digest);
    world_request_add_digest(name, digest, shown);
}

void world_request_clear(void) { item_count = 0; }

/* Waits for a nonblocking collective of the comparison, with the timeout. */
static int wait_for(MPI_Request *request)
{
    mpi_wait_site site = {"the comparison of the requests", "the world", NULL, 0, 0};
    return mpi_wait(request, &site);
}

static int same_item(const request_item *a, const request_item *b)
{
    return !strcmp(a->name, b->name) && !strcmp(a->shown, b->shown);
}

/* "rank 2", "ranks 0, 1, 3": the ranks whose item equals all[q]. */
static void rank_list(const request_item *all, int size, int q, char *text, size_t room)
{
    int count = 0, listed = 0;
    for (int p = q; p < size; p++) count += same_item(&all[p], &all[q]);
    size_t used = (size_t)snprintf(text, room, "rank%s ", count > 1 ? "s" : "");
    for (int p = q; p < size && used < room; p++) {
        if (!same_item(&all[p], &all[q])) continue;
        if (listed == 6) {
            snprintf(text + used, room - used, " and %d more", count - listed);
            return;
        }
        used += (size_t)snprintf(text + used, room - used, "%s%d", listed++ ? ", " : "", p);
    }
}

/* The message for the first differing item, whose values (every rank's)
 * are all[size]: "--seed is '1' on rank 0, '2' on rank 1", or, where the
 * ranks list different items there, "--seed '1' on rank 0; --fps '8' on rank 1". */
static void describe_difference(const request_item *all, int size)
{
    int same_name = 1;
    for (int q = 1; q < size; q++) same_name &= !strcmp(all[q].name, all[0].name);
    char text[900];
    size_t used = (size_t)snprintf(text, sizeof text, "the ranks were not given the same request: ");
    if (same_name) used += (size_t)snprintf(text + used, sizeof text - used, "%s is ", all[0].name);
    for (int q = 0, values = 0; q < size && used < sizeof text; q++) {
        int first = 1;
        for (int p = 0; p < q && first; p++) first = !same_item(&all[p], &all[q]);
        if (!first) continue;
        if (values++ == 4) {
            snprintf(text + used, sizeof text - used, ", ...");
            break;
        }
        char ranks[96];
        rank_list(all, size, q, ranks, sizeof ranks);
        if (same_name)
            used += (size_t)snprintf(text + used, sizeof text - used, "%s%s on %s", values > 1 ? ", " : "",
                                     all[q].shown, ranks);
        else
            used += (size_t)snprintf(text + used, sizeof text - used, "%s%s%s%s on %s", values > 1 ? "; " : "",
                                     all[q].name[0] ? all[q].name : "nothing more", all[q].name[0] ? " " : "",
                                     all[q].shown, ranks);
    }
    error_set("%s; start every rank with the same command, options, prompts and model", text);
}

int world_request_compare(int rank, int size)
{
    uint64_t lowest[WORLD_REQUEST_MAX_ITEMS], highest[WORLD_REQUEST_MAX_ITEMS];
    for (int i = item_count; i < WORLD_REQUEST_MAX_ITEMS; i++) hashes[i] = 0;
    MPI_Request requests[2];
    MPI_Iallreduce(hashes, lowest, WORLD_REQUEST_MAX_ITEMS, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD, &requests[0]);
    MPI_Iallreduce(hashes, highest, WORLD_REQUEST_MAX_ITEMS, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD, &requests[1]);
    if (wait_for(&requests[0]) || wait_for(&requests[1])) return -1;
    int k = 0;
    while (k < WORLD_REQUEST_MAX_ITEMS && lowest[k] == highest[k]) k++;
    if (k == WORLD_REQUEST_MAX_ITEMS) return 0;
    /* Every rank knows k: the ranks' short values of item k, gathered. */
    static request_item all[GATHER_MAX_RANKS];
    if (size > GATHER_MAX_RANKS)
        return error_set("the ranks were not given the same request: item %d (%s on rank %d) differs", k + 1,
                         k < item_count ? items[k].name : "nothing", rank);
    request_item mine = {{0}, {0}};
    if (k < item_count) mine = items[k];
    MPI_Request gathered;
    MPI_Iallgather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE, MPI_COMM_WORLD, &gathered);
    if (wait_for(&gathered)) return -1;
    describe_difference(all, size);
    return -1;
}
