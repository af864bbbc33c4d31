/* The counters of `moedit serve`, rendered as Prometheus text (exposition
 * format 0.0.4) for GET /metrics:
 *   moedit_serve_requests_total{endpoint,status}  counter, every answered request
 *   moedit_serve_images_total                      counter, images returned
 *   moedit_serve_queue_length                      gauge, requests waiting
 *   moedit_serve_running                           gauge, requests being generated (0 or 1)
 *   moedit_serve_request_seconds                   histogram, image requests: accepted to answered
 *   moedit_serve_queue_wait_seconds                histogram, image requests: accepted to started
 *   moedit_serve_step_seconds                      histogram, one denoising step on rank 0
 *   moedit_serve_device_memory_bytes{device,kind}  gauge, what the model's backend holds on rank 0's
 *                                                  device (kind in_use, peak; total: the device's size)
 * Thread-safe: HTTP threads and the generating thread update it at once. */
#ifndef MOEDIT_SERVE_SERVE_METRICS_H
#define MOEDIT_SERVE_SERVE_METRICS_H

#include "backend/backend.h"

#include <pthread.h>
#include <stdint.h>

#define SERVE_METRIC_BUCKETS 16
#define SERVE_METRIC_STATUSES 32

typedef struct serve_histogram {
    uint64_t counts[SERVE_METRIC_BUCKETS + 1]; /* per bucket, the last is +Inf (not cumulative) */
    double sum;
    uint64_t count;
} serve_histogram;

typedef struct serve_metrics {
    pthread_mutex_t lock;
    struct {
        char endpoint[32];
        int status;
        uint64_t count;
    } requests[SERVE_METRIC_STATUSES];
    int request_kinds;
    uint64_t images;
    int queue_length, running;
    serve_histogram request_seconds, queue_wait_seconds, step_seconds;
    backend_memory_use memory; /* device[0] == 0: not known yet (no run ended) */
} serve_metrics;

void serve_metrics_init(serve_metrics *m);
void serve_metrics_free(serve_metrics *m);
void serve_metrics_count(serve_metrics *m, const char *endpoint, int status);
void serve_metrics_images(serve_metrics *m, int images);
void serve_metrics_set_queue_length(serve_metrics *m, int queue_length);
void serve_metrics_set_running(serve_metrics *m, int running);
/* The figures rank 0's backend gave at the end of its last run (generate_hooks.device_memory). */
void serve_metrics_set_memory(serve_metrics *m, const backend_memory_use *memory);
typedef enum { SERVE_REQUEST_SECONDS, SERVE_QUEUE_WAIT_SECONDS, SERVE_STEP_SECONDS } serve_histogram_kind;
void serve_metrics_observe(serve_metrics *m, serve_histogram_kind kind, double seconds);

/* The text (malloc'd), or NULL when out of memory. */
char *serve_metrics_text(serve_metrics *m);

#endif
