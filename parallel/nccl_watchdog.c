/* The collective timeout for NCCL groups; see nccl_watchdog.h. */
#include "parallel/nccl_watchdog.h"

#include "core/error.h"
#include "core/timer.h"
#include "parallel/mpi_wait.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define WATCHES_MAX 64
#define STAGGER_SECONDS 0.5 /* per rank, so the lowest waiting rank reports first */
#define STAGGER_RANKS 32

struct nccl_watch {
    ncclComm_t comm;
    const char *name;
    int world_rank, device;
    cudaEvent_t done;         /* recorded after the last queued collective */
    double queued_at;         /* host seconds when it was queued; 0: nothing queued */
    const char *operation;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static nccl_watch *watches[WATCHES_MAX];
static int thread_started;

/* Ends the process: see the top of nccl_watchdog.h. Called with the lock held. */
static void fire(nccl_watch *w, const char *why)
{
    fprintf(stderr, "moedit: error: [rank %d] process group %s: %s (MOEDIT_COLLECTIVE_TIMEOUT)\n", w->world_rank,
            w->name, why);
    fflush(stderr);
    ncclCommAbort(w->comm);
    raise(SIGTERM);
    _exit(1); /* SIGTERM was ignored */
}

/* One look at a watched group. */
static void check(nccl_watch *w, double timeout)
{
    char why[512];
    ncclResult_t async = ncclSuccess;
    if (ncclCommGetAsyncError(w->comm, &async) == ncclSuccess && async != ncclSuccess && async != ncclInProgress) {
        snprintf(why, sizeof why, "NCCL reports an error while running %s: %s", w->operation ? w->operation : "a collective",
                 ncclGetErrorString(async));
        fire(w, why);
    }
    if (timeout <= 0 || w->queued_at == 0) return;
    cudaSetDevice(w->device);
    if (cudaEventQuery(w->done) != cudaErrorNotReady) return;
    double waited = timer_seconds() - w->queued_at;
    int place = w->world_rank < STAGGER_RANKS ? w->world_rank : STAGGER_RANKS;
    if (waited < timeout + STAGGER_SECONDS * place) return;
    snprintf(why, sizeof why,
             "%s has not finished %.0f s after it was queued (a rank of the group stopped, hung or died?); ending the run",
             w->operation, waited);
    fire(w, why);
}

static void *watchdog(void *unused)
{
    (void)unused;
    double timeout = mpi_wait_timeout();
    for (;;) {
        struct timespec second = {1, 0};
        nanosleep(&second, NULL);
        pthread_mutex_lock(&lock);
        for (int i = 0; i < WATCHES_MAX; i++)
            if (watches[i]) check(watches[i], timeout);
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

nccl_watch *nccl_watch_start(ncclComm_t comm, const char *name, int world_rank)
{
    nccl_watch *w = calloc(1, sizeof *w);
    if (!w) {
        error_set("out of memory watching process group %s", name);
        return NULL;
    }
    *w = (nccl_watch){comm, name, world_rank, 0, NULL, 0, NULL};
    cudaGetDevice(&w->device);
    if (cudaEventCreateWithFlags(&w->done, cudaEventDisableTiming) != cudaSuccess) {
        free(w);
        error_set("process group %s: cannot make the event of its collective timeout", name);
        return NULL;
    }
    pthread_mutex_lock(&lock);
    int slot = 0;
    while (slot < WATCHES_MAX && watches[slot]) slot++;
    if (slot < WATCHES_MAX) watches[slot] = w; /* more groups than slots: the rest go unwatched */
    pthread_t thread;
    if (!thread_started && pthread_create(&thread, NULL, watchdog, NULL) == 0) {
        pthread_detach(thread);
        thread_started = 1;
    }
    pthread_mutex_unlock(&lock);
    return w;
}

void nccl_watch_queued(nccl_watch *w, const char *operation, cudaStream_t stream)
{
    if (!w) return;
    pthread_mutex_lock(&lock);
    if (cudaEventRecord(w->done, stream) == cudaSuccess) {
        w->queued_at = timer_seconds();
        w->operation = operation;
    }
    pthread_mutex_unlock(&lock);
}

void nccl_watch_stop(nccl_watch *w)
{
    if (!w) return;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < WATCHES_MAX; i++)
        if (watches[i] == w) watches[i] = NULL;
    pthread_mutex_unlock(&lock);
    cudaEventDestroy(w->done);
    free(w);
}
