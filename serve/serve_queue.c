/* The job queue of `moedit serve`; see serve_queue.h. */
#include "serve/serve_queue.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int serve_queue_init(serve_queue *q, int capacity)
{
    memset(q, 0, sizeof *q);
    q->jobs = calloc((size_t)capacity, sizeof *q->jobs);
    if (!q->jobs) return -1;
    q->capacity = capacity;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->changed, NULL);
    return 0;
}

void serve_queue_free(serve_queue *q)
{
    if (!q->jobs) return;
    pthread_cond_destroy(&q->changed);
    pthread_mutex_destroy(&q->lock);
    free(q->jobs);
    q->jobs = NULL;
}

int serve_queue_push(serve_queue *q, serve_job *job)
{
    pthread_mutex_lock(&q->lock);
    int status = q->closed ? SERVE_QUEUE_CLOSED : q->count == q->capacity ? SERVE_QUEUE_FULL : 0;
    if (status == 0) {
        q->jobs[(q->head + q->count) % q->capacity] = job;
        q->count++;
        pthread_cond_broadcast(&q->changed);
    }
    pthread_mutex_unlock(&q->lock);
    return status;
}

/* Waits until a job is queued, or until timeout_seconds passed; with the lock held. */
static void wait_for_job(serve_queue *q, double timeout_seconds)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    double whole = floor(timeout_seconds);
    until.tv_sec += (time_t)whole;
    until.tv_nsec += (long)((timeout_seconds - whole) * 1e9);
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    int waited = 0;
    while (q->count == 0 && waited != ETIMEDOUT) waited = pthread_cond_timedwait(&q->changed, &q->lock, &until);
}

serve_job *serve_queue_pop(serve_queue *q, double timeout_seconds)
{
    serve_job *job = NULL;
    return serve_queue_pop_batch(q, timeout_seconds, &job, 1, NULL) ? job : NULL;
}

int serve_queue_pop_batch(serve_queue *q, double timeout_seconds, serve_job **jobs, int max,
                          int (*joins)(const serve_job *first, const serve_job *job))
{
    pthread_mutex_lock(&q->lock);
    wait_for_job(q, timeout_seconds);
    int taken = 0, kept = 0;
    /* One pass over the ring: taken jobs leave, the others close up in order. */
    for (int i = 0; i < q->count; i++) {
        serve_job *job = q->jobs[(q->head + i) % q->capacity];
        if (taken == 0 || (taken < max && joins && joins(jobs[0], job))) jobs[taken++] = job;
        else q->jobs[(q->head + kept++) % q->capacity] = job;
    }
    q->count = kept;
    pthread_mutex_unlock(&q->lock);
    return taken;
}

void serve_queue_finish(serve_queue *q, serve_job *job, int http_status, char *body)
{
    pthread_mutex_lock(&q->lock);
    job->http_status = http_status;
    job->body = body;
    job->done = 1;
    pthread_cond_broadcast(&q->changed);
    pthread_mutex_unlock(&q->lock);
}

void serve_queue_wait(serve_queue *q, serve_job *job)
{
    pthread_mutex_lock(&q->lock);
    while (!job->done) pthread_cond_wait(&q->changed, &q->lock);
    pthread_mutex_unlock(&q->lock);
}

/* Takes job out of the queue when it is still there; with the lock held. */
static int remove_waiting(serve_queue *q, serve_job *job)
{
    int found = 0;
    for (int i = 0, kept = 0; i < q->count; i++) {
        serve_job *other = q->jobs[(q->head + i) % q->capacity];
        if (other == job) found = 1;
        else q->jobs[(q->head + kept++) % q->capacity] = other;
    }
    q->count -= found;
    return found;
}

int serve_queue_wait_unless_gone(serve_queue *q, serve_job *job, int (*gone)(void *user), void *user)
{
    pthread_mutex_lock(&q->lock);
    while (!job->done) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100000000L;
        if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&q->changed, &q->lock, &until);
        if (job->done) break;
        if (__atomic_load_n(&job->client_left, __ATOMIC_SEQ_CST)) continue; /* known: wait for the answer */
        pthread_mutex_unlock(&q->lock);
        int left = gone(user);
        pthread_mutex_lock(&q->lock);
        if (left && !job->done && remove_waiting(q, job)) {
            pthread_mutex_unlock(&q->lock);
            return 1;
        }
        if (left && !job->done) __atomic_store_n(&job->client_left, 1, __ATOMIC_SEQ_CST); /* it runs */
    }
    pthread_mutex_unlock(&q->lock);
    return 0;
}

void serve_queue_close(serve_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = 1;
    pthread_cond_broadcast(&q->changed);
    pthread_mutex_unlock(&q->lock);
}

int serve_queue_length(serve_queue *q)
{
    pthread_mutex_lock(&q->lock);
    int n = q->count;
    pthread_mutex_unlock(&q->lock);
    return n;
}

int serve_queue_closed(serve_queue *q)
{
    pthread_mutex_lock(&q->lock);
    int closed = q->closed;
    pthread_mutex_unlock(&q->lock);
    return closed;
}
