/* The bounded queue between the HTTP threads of `moedit serve` and the one
 * thread that generates (rank 0's main thread): an HTTP thread pushes a job
 * and sleeps until the generating thread has filled in its answer; a full
 * queue refuses the push (the HTTP thread answers 429), a closed one too
 * (the server is stopping: 503). First in, first out. */
#ifndef MOEDIT_SERVE_SERVE_QUEUE_H
#define MOEDIT_SERVE_SERVE_QUEUE_H

#include "serve/serve_request.h"

#include <pthread.h>

typedef struct serve_job {
    serve_request request;
    double accepted_at;         /* timer_seconds() when pushed */
    int client_left;            /* __atomic: the client left after the job was taken to run */
    /* The answer, filled by serve_queue_finish: */
    int done;
    int http_status;
    char *body;                 /* malloc'd JSON, owned by the job */
} serve_job;

typedef struct serve_queue {
    pthread_mutex_t lock;
    pthread_cond_t changed;     /* a job pushed, a job done, or closed */
    serve_job **jobs;           /* ring of capacity */
    int capacity, head, count;
    int closed;
} serve_queue;

enum { SERVE_QUEUE_FULL = -1, SERVE_QUEUE_CLOSED = -2 };

int serve_queue_init(serve_queue *q, int capacity);
void serve_queue_free(serve_queue *q);
/* 0, SERVE_QUEUE_FULL or SERVE_QUEUE_CLOSED. */
int serve_queue_push(serve_queue *q, serve_job *job);
/* The oldest job, or NULL after timeout_seconds with none. */
serve_job *serve_queue_pop(serve_queue *q, double timeout_seconds);
/* The oldest job into jobs[0] (waiting up to timeout_seconds; 0 when none
 * came), then every later waiting job that `joins` accepts beside jobs[0],
 * oldest first, up to max jobs; the others keep their places. Returns the
 * count. */
int serve_queue_pop_batch(serve_queue *q, double timeout_seconds, serve_job **jobs, int max,
                          int (*joins)(const serve_job *first, const serve_job *job));
/* Hands the answer to the waiting HTTP thread (takes body). */
void serve_queue_finish(serve_queue *q, serve_job *job, int http_status, char *body);
void serve_queue_wait(serve_queue *q, serve_job *job);
/* The same, asking gone(user) every tenth of a second while the job waits
 * in the queue: once it says the client left, the job leaves the queue
 * (never runs) and this returns 1. A job already taken to run is waited
 * for (0); when its client leaves meanwhile, job->client_left is set for
 * the generating thread, which cancels it at its next step. */
int serve_queue_wait_unless_gone(serve_queue *q, serve_job *job, int (*gone)(void *user), void *user);
/* Refuses later pushes; the jobs already in stay. */
void serve_queue_close(serve_queue *q);
int serve_queue_length(serve_queue *q);
int serve_queue_closed(serve_queue *q);

#endif
