/* Bootstrap from the launcher and the groups of a layout; see world.h. */
#include "parallel/world.h"

#include "core/error.h"
#include "core/host_memory.h"
#include "parallel/mpi_wait.h"
#include "parallel/world_hosts.h"
#include "parallel/world_request.h"

#include <mpi.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <time.h>

/* True when a launcher started this process as one of several ranks. */
static int launched_by_mpi(void)
{
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

/* srun started this process as one of several tasks, but no launcher
 * variables of an MPI came with it (srun without --mpi=pmix where the
 * cluster's default is none): every task is then a world of one and renders
 * the whole job alone. Said rather than refused, as independent tasks may be
 * what the user meant. */
static void warn_tasks_alone(void)
{
    const char *tasks = getenv("SLURM_STEP_NUM_TASKS");
    if (!tasks || atoi(tasks) <= 1) return;
    fprintf(stderr, "moedit: warning: srun started %d tasks but no MPI world joins them (no PMI or PMIx variables): "
            "each task runs alone; srun --mpi=pmix joins them into one run (docs/multi-node.md)\n", atoi(tasks));
}

/* OpenMP threads per rank when the user did not say (OMP_NUM_THREADS): the
 * machine's CPUs shared among its `local` ranks, at most the CPUs this rank
 * may run on. Unbound ranks (mpirun --oversubscribe binds none) would
 * otherwise each start a thread per CPU: 4 ranks on 2 cores took 78 s for
 * the demo's picture instead of 2.9 s. */
static void share_cores(int local)
{
    if (getenv("OMP_NUM_THREADS")) return;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int share = online > local ? (int)(online / local) : 1, mine = omp_get_num_procs();
    omp_set_num_threads(share < mine ? share : mine);
}

/* 64 bits from the kernel's random source; the clock and pid if it has none. */
static uint64_t draw_random_seed(void)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) == (ssize_t)sizeof seed) return seed;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, &seed, sizeof seed) : -1;
    if (fd >= 0) close(fd);
    if (got == (ssize_t)sizeof seed) return seed;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return ((uint64_t)now.tv_sec * 1000000007u) ^ (uint64_t)now.tv_nsec ^ ((uint64_t)getpid() << 32);
}

int world_init(world *w, int *argc, char ***argv)
{
    memset(w, 0, sizeof *w);
    w->size = w->hosts = 1;
    w->random_seed = draw_random_seed();
    if (!launched_by_mpi()) {
        warn_tasks_alone();
        return 0;
    }
    /* The process groups' all-reduce is nonblocking (parallel/mpi_wait.h).
     * Open MPI's default algorithm for it was twice as slow as the blocking
     * MPI_Allreduce between 2 ranks of this 2-core machine (16 MiB: 11.4 ms
     * against 5.6; 1 MiB: 0.34 against 0.15); Rabenseifner's (3) took 3.8
     * and 0.18 ms. Other MPIs ignore the variable; a user's own choice wins. */
    setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "3", 0);
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return error_set("MPI_Init failed: cannot join the launcher's world");
    w->using_mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &w->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &w->size);
    if (mpi_wait_init()) return -1;
    int local;
    if (world_hosts_find(&w->host_of, &w->hosts, &local)) return -1;
    share_cores(local);
    /* Rank 0's draw on every rank: a random seed makes the same run everywhere. */
    if (MPI_Bcast(&w->random_seed, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
        return error_set("MPI_Bcast failed: the ranks could not share the run's random seed");
    host_memory_set_sharers(local); /* the ranks load their weights side by side */
    return 0;
}

/* Process-wide, as MPI_COMM_WORLD is: the agreements still to make. */
static int request_pending = 1, setup_pending = 1;

/* A 31-bit hash of the error message, to tell whether the ranks failed alike. */
static int message_hash(void)
{
    uint32_t h = 2166136261u;
    for (const char *c = error_message(); *c; c++) h = (h ^ (uint8_t)*c) * 16777619u;
    return (int)(h & 0x7fffffff);
}

/* The values ride in an agreement's MIN reduction as 16-bit pieces: rank
 * 0's pieces, INT_MAX from every other rank. */
#define SHARE_PIECES (4 * WORLD_SHARE_VALUES)

/* The all-reduces of an agreement, waited for with the collective timeout. */
static int all_reduce_ints(const int *in, int *out, int count, MPI_Op op)
{
    MPI_Request request;
    mpi_wait_site site = {"the agreement on the run's status", "the world", NULL, 0, 0};
    if (MPI_Iallreduce(in, out, count, MPI_INT, op, MPI_COMM_WORLD, &request) != MPI_SUCCESS)
        return error_set("the ranks could not agree whether the run may go on");
    return mpi_wait(&request, &site);
}

/* Every rank learns whether any failed and, when none did, rank 0's
 * values[0..count) (count <= WORLD_SHARE_VALUES); see world.h. The one
 * round of every agreement: request, share, setup and end. */
static int agree_status(const world *w, int status, uint64_t *values, int count)
{
    int failed = status != 0, hash = failed ? message_hash() : 0;
    /* Lowest: failing rank, message hash, and whether every rank failed
     * (the least of the failed flags), then rank 0's values; highest: message hash. */
    int low[3 + SHARE_PIECES] = {failed ? w->rank : w->size, failed ? hash : INT_MAX, failed}, high = failed ? hash : -1;
    for (int i = 0; i < SHARE_PIECES; i++)
        low[3 + i] = w->rank == 0 && i / 4 < count ? (int)((values[i / 4] >> (16 * (i % 4))) & 0xffff) : INT_MAX;
    int lowest[3 + SHARE_PIECES], highest;
    if (all_reduce_ints(low, lowest, 3 + SHARE_PIECES, MPI_MIN) || all_reduce_ints(&high, &highest, 1, MPI_MAX))
        return -1;
    int first_failed = lowest[0], all_failed = lowest[2];
    if (first_failed == w->size) {
        for (int v = 0; v < count; v++) {
            values[v] = 0;
            for (int p = 0; p < 4; p++) values[v] |= (uint64_t)(lowest[3 + 4 * v + p] & 0xffff) << (16 * p);
        }
        return 0;
    }
    request_pending = setup_pending = 0; /* every rank stops: no further agreement */
    if (w->rank == first_failed) {
        /* The rank is named unless every rank failed with this very message. */
        if (!all_failed || lowest[1] != highest) {
            char message[1024];
            snprintf(message, sizeof message, "%s", error_message());
            error_set("[rank %d] %s", w->rank, message);
        }
    } else {
        error_set("rank %d failed (its error is printed there)", first_failed);
    }
    error_mark_agreed(w->rank == first_failed);
    return -1;
}

/* The request agreement (world.h), carrying rank 0's values when a share
 * comes before it (a caller of the library that made none). */
static int agree_request(const world *w, int status, uint64_t *values, int count)
{
    request_pending = 0;
    if (agree_status(w, status, values, count)) return -1;
    if (world_request_compare(w->rank, w->size) == 0) return 0;
    setup_pending = 0;
    error_mark_agreed(w->rank == 0);
    return -1;
}

int world_agree_request(const world *w, int status)
{
    if (!request_pending || !w->using_mpi || w->size == 1) return status;
    return agree_request(w, status, NULL, 0);
}

int world_agree(const world *w, int status)
{
    if (request_pending && world_agree_request(w, status)) return -1;
    if (!setup_pending || !w->using_mpi || w->size == 1) return status;
    setup_pending = 0;
    return agree_status(w, status, NULL, 0);
}

int world_agree_share(const world *w, int status, uint64_t *values, int count)
{
    if (!w->using_mpi || w->size == 1) return status;
    if (count < 0 || count > WORLD_SHARE_VALUES)
        return error_set("world_agree_share: %d values, at most %d", count, WORLD_SHARE_VALUES);
    if (request_pending) return agree_request(w, status, values, count);
    return agree_status(w, status, values, count); /* the setup agreement stays pending */
}

int world_agree_end(const world *w, int status)
{
    if (!w->using_mpi || w->size == 1 || (status && error_is_agreed())) return status;
    if (request_pending || setup_pending) return world_agree(w, status); /* it closes the run too */
    return agree_status(w, status, NULL, 0);
}

void world_finalize(world *w)
{
    if (w->using_mpi) mpi_wait_finalize();
    if (w->using_mpi) MPI_Finalize();
    w->using_mpi = 0;
    free(w->host_of);
    w->host_of = NULL;
    w->hosts = 1;
}

void world_abort(const world *w, int code)
{
    if (w->using_mpi && w->size > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

/* The transport for the device the tensors live on. */
static process_group *create_group(const char *name, const int *ranks, int count, int rank, backend *be)
{
#ifdef MOEDIT_HAVE_CUDA
    if (be->device == DEVICE_CUDA) return pg_create_nccl(name, ranks, count, rank, be);
#endif
    return pg_create_mpi(name, ranks, count, rank, be);
}

int world_broadcast_idle(const world *w, void *bytes, int64_t n)
{
    if (w->size == 1 || n == 0) return 0;
    if (n > INT_MAX) return error_set("a broadcast of %lld bytes is too large for MPI", (long long)n);
    MPI_Request request;
    if (MPI_Ibcast(bytes, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD, &request) != MPI_SUCCESS)
        return error_set("rank %d: MPI_Ibcast failed", w->rank);
    if (w->rank == 0) {
        mpi_wait_site site = {"the broadcast of a request", "the world", NULL, 0, 0};
        return mpi_wait(&request, &site);
    }
    const struct timespec pause = {0, 1000000};
    for (int done = 0;;) {
        if (MPI_Test(&request, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return error_set("rank %d: MPI_Test failed waiting for a broadcast", w->rank);
        if (done) return 0;
        mpi_wait_answer_probes(); /* rank 0 may ask whether this rank is alive (its broadcast timed out) */
        nanosleep(&pause, NULL);
    }
}

int world_lost_a_rank(const world *w) { return w->using_mpi && w->size > 1 && mpi_wait_gave_up(); }

process_group *world_group(const world *w, const char *name, backend *be)
{
    if (world_agree(w, 0)) return NULL;
    if (w->size == 1) return pg_create_self(name, w->rank, be);
    int ranks[LAYOUT_MAX_RANKS];
    for (int i = 0; i < w->size; i++) ranks[i] = i;
    return create_group(name, ranks, w->size, w->rank, be);
}

int parallel_context_init(parallel_context *ctx, const world *w, parallel_degrees degrees, backend *be)
{
    memset(ctx, 0, sizeof *ctx);
    if (world_agree(w, layout_init(&ctx->layout, degrees, w->size, w->rank))) return -1;
    /* Every rank creates every kind in the same order: MPI_Comm_create_group
     * needs only the members, but a fixed order keeps the program simple. */
    for (int kind = 0; kind < GROUP_KINDS; kind++) {
        int ranks[LAYOUT_MAX_RANKS];
        int count = layout_group_ranks(&ctx->layout, (group_kind)kind, w->rank, ranks);
        const char *name = layout_group_name((group_kind)kind);
        if (count == 0) continue;
        ctx->groups[kind] = count == 1 ? pg_create_self(name, w->rank, be) : create_group(name, ranks, count, w->rank, be);
        if (!ctx->groups[kind]) {
            parallel_context_free(ctx);
            return -1;
        }
    }
    return 0;
}

void parallel_context_free(parallel_context *ctx)
{
    for (int kind = 0; kind < GROUP_KINDS; kind++) pg_destroy(ctx->groups[kind]);
    memset(ctx->groups, 0, sizeof ctx->groups);
}
