/* Timing of started exchanges against the compute stream; see exchange_timing.h. */
#include "parallel/exchange_timing.h"

#include "core/env_choice.h"

#include <stdio.h>
#include <string.h>

void exchange_timing_init(exchange_timing *t, cudaStream_t compute)
{
    static const char *const choices[2] = {"off", "on"};
    static int warned;
    memset(t, 0, sizeof *t);
    if (env_choice("MOEDIT_EXCHANGE_TIMING", choices, 2, 0, &warned) != 1) return;
    cudaError_t status = cudaEventCreate(&t->base);
    for (int i = 0; i < PG_STARTED_MAX && status == cudaSuccess; i++) {
        status = cudaEventCreate(&t->start[i]);
        if (status == cudaSuccess) status = cudaEventCreate(&t->end[i]);
        if (status == cudaSuccess) status = cudaEventCreate(&t->wait[i]);
    }
    if (status == cudaSuccess) status = cudaEventRecord(t->base, compute);
    t->on = status == cudaSuccess; /* a diagnostic: without its events the run goes on untimed */
}

/* Milliseconds from time zero to e (which has been recorded). */
static float since_base(const exchange_timing *t, cudaEvent_t e)
{
    float ms = 0;
    cudaEventSynchronize(e);
    cudaEventElapsedTime(&ms, t->base, e);
    return ms;
}

/* Adds the finished exchange `ticket` to the totals and frees its slot. */
static void settle(exchange_timing *t, int ticket)
{
    if (!t->started[ticket]) return;
    float end = since_base(t, t->end[ticket]), running = 0;
    cudaEventElapsedTime(&running, t->start[ticket], t->end[ticket]); /* one stream: never negative */
    t->running_ms += running;
    t->exchanges++;
    if (t->waited[ticket]) {
        float stalled = end - since_base(t, t->wait[ticket]);
        if (stalled > 0) t->waiting_ms += stalled;
        t->waits++;
    }
    t->started[ticket] = t->waited[ticket] = 0;
}

void exchange_timing_start(exchange_timing *t, int ticket, cudaStream_t side)
{
    if (!t->on) return;
    settle(t, ticket);
    cudaEventRecord(t->start[ticket], side);
    t->started[ticket] = 1;
}

void exchange_timing_end(exchange_timing *t, int ticket, cudaStream_t side)
{
    if (t->on) cudaEventRecord(t->end[ticket], side);
}

void exchange_timing_wait(exchange_timing *t, int ticket, cudaStream_t compute)
{
    if (!t->on || !t->started[ticket]) return;
    cudaEventRecord(t->wait[ticket], compute);
    t->waited[ticket] = 1;
}

void exchange_timing_report(exchange_timing *t, const char *group, int rank)
{
    if (!t->on) return;
    for (int i = 0; i < PG_STARTED_MAX; i++) settle(t, i);
    if (t->exchanges > 0)
        fprintf(stderr,
                "exchange timing (group %s, rank %d): %lld started exchanges ran %.1f ms; the compute stream "
                "waited %.1f ms for them at %lld waits\n",
                group, rank, (long long)t->exchanges, t->running_ms, t->waiting_ms, (long long)t->waits);
    cudaEventDestroy(t->base);
    for (int i = 0; i < PG_STARTED_MAX; i++) {
        cudaEventDestroy(t->start[i]);
        cudaEventDestroy(t->end[i]);
        cudaEventDestroy(t->wait[i]);
    }
    t->on = 0;
}
