/* Prometheus counters, gauges and histograms of `moedit serve`; see serve_metrics.h. */
#include "serve/serve_metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds in seconds, shared by every histogram (a step of the demo on
 * a CPU is milliseconds; a 17B request on a GPU, tens of seconds). */
static const double bucket_bounds[SERVE_METRIC_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                                           2.5,   5,    10,    25,   50,  100,  250, 1000};

void serve_metrics_init(serve_metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
}

void serve_metrics_free(serve_metrics *m) { pthread_mutex_destroy(&m->lock); }

void serve_metrics_count(serve_metrics *m, const char *endpoint, int status)
{
    pthread_mutex_lock(&m->lock);
    int i = 0;
    while (i < m->request_kinds && (m->requests[i].status != status || strcmp(m->requests[i].endpoint, endpoint))) i++;
    if (i == m->request_kinds && i < SERVE_METRIC_STATUSES) {
        snprintf(m->requests[i].endpoint, sizeof m->requests[i].endpoint, "%s", endpoint);
        m->requests[i].status = status;
        m->request_kinds++;
    }
    if (i < m->request_kinds) m->requests[i].count++;
    pthread_mutex_unlock(&m->lock);
}

void serve_metrics_images(serve_metrics *m, int images)
{
    pthread_mutex_lock(&m->lock);
    m->images += (uint64_t)images;
    pthread_mutex_unlock(&m->lock);
}

void serve_metrics_set_queue_length(serve_metrics *m, int queue_length)
{
    pthread_mutex_lock(&m->lock);
    m->queue_length = queue_length;
    pthread_mutex_unlock(&m->lock);
}

void serve_metrics_set_running(serve_metrics *m, int running)
{
    pthread_mutex_lock(&m->lock);
    m->running = running;
    pthread_mutex_unlock(&m->lock);
}

void serve_metrics_set_memory(serve_metrics *m, const backend_memory_use *memory)
{
    pthread_mutex_lock(&m->lock);
    m->memory = *memory;
    pthread_mutex_unlock(&m->lock);
}

void serve_metrics_observe(serve_metrics *m, serve_histogram_kind kind, double seconds)
{
    pthread_mutex_lock(&m->lock);
    serve_histogram *h = kind == SERVE_REQUEST_SECONDS      ? &m->request_seconds
                         : kind == SERVE_QUEUE_WAIT_SECONDS ? &m->queue_wait_seconds
                                                            : &m->step_seconds;
    int b = 0;
    while (b < SERVE_METRIC_BUCKETS && seconds > bucket_bounds[b]) b++;
    h->counts[b]++;
    h->sum += seconds;
    h->count++;
    pthread_mutex_unlock(&m->lock);
}

typedef struct text_buffer {
    char *data;
    size_t used, capacity;
    int failed;
} text_buffer;

static void append(text_buffer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void append(text_buffer *t, const char *fmt, ...)
{
    for (int attempt = 0; attempt < 2 && !t->failed; attempt++) {
        va_list args;
        va_start(args, fmt);
        int n = vsnprintf(t->data + t->used, t->capacity - t->used, fmt, args);
        va_end(args);
        if (n < 0) t->failed = 1;
        else if ((size_t)n < t->capacity - t->used) {
            t->used += (size_t)n;
            return;
        } else {
            size_t capacity = 2 * t->capacity + (size_t)n + 1;
            char *grown = realloc(t->data, capacity);
            if (!grown) t->failed = 1;
            else t->data = grown, t->capacity = capacity;
        }
    }
}

static void append_histogram(text_buffer *t, const char *name, const char *help, const serve_histogram *h)
{
    append(t, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cumulative = 0;
    for (int b = 0; b < SERVE_METRIC_BUCKETS; b++) {
        cumulative += h->counts[b];
        append(t, "%s_bucket{le=\"%g\"} %llu\n", name, bucket_bounds[b], (unsigned long long)cumulative);
    }
    append(t, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, (unsigned long long)h->count, name, h->sum,
           name, (unsigned long long)h->count);
}

char *serve_metrics_text(serve_metrics *m)
{
    text_buffer t = {malloc(4096), 0, 4096, 0};
    if (!t.data) return NULL;
    t.data[0] = 0;
    pthread_mutex_lock(&m->lock);
    append(&t, "# HELP moedit_serve_requests_total HTTP requests answered, by endpoint and status.\n"
               "# TYPE moedit_serve_requests_total counter\n");
    for (int i = 0; i < m->request_kinds; i++)
        append(&t, "moedit_serve_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n", m->requests[i].endpoint,
               m->requests[i].status, (unsigned long long)m->requests[i].count);
    append(&t, "# HELP moedit_serve_images_total Images returned.\n# TYPE moedit_serve_images_total counter\n"
               "moedit_serve_images_total %llu\n", (unsigned long long)m->images);
    append(&t, "# HELP moedit_serve_queue_length Image requests waiting to start.\n"
               "# TYPE moedit_serve_queue_length gauge\nmoedit_serve_queue_length %d\n", m->queue_length);
    append(&t, "# HELP moedit_serve_running Image requests being generated.\n"
               "# TYPE moedit_serve_running gauge\nmoedit_serve_running %d\n", m->running);
    append_histogram(&t, "moedit_serve_request_seconds", "Image requests, accepted to answered.", &m->request_seconds);
    append_histogram(&t, "moedit_serve_queue_wait_seconds", "Image requests, accepted to started.", &m->queue_wait_seconds);
    append_histogram(&t, "moedit_serve_step_seconds", "Denoising steps on rank 0.", &m->step_seconds);
    const backend_memory_use *u = &m->memory;
    if (u->device[0]) {
        append(&t, "# HELP moedit_serve_device_memory_bytes Bytes the model's backend holds on rank 0's device "
                   "(in_use, peak since it started) and the device's size (total; the host's RAM for cpu).\n"
                   "# TYPE moedit_serve_device_memory_bytes gauge\n");
        const char *kinds[3] = {"in_use", "peak", "total"};
        int64_t values[3] = {u->in_use, u->peak, u->total};
        for (int k = 0; k < 3; k++)
            if (values[k] >= 0)
                append(&t, "moedit_serve_device_memory_bytes{device=\"%s\",kind=\"%s\"} %lld\n", u->device, kinds[k],
                       (long long)values[k]);
    }
    pthread_mutex_unlock(&m->lock);
    if (t.failed) {
        free(t.data);
        return NULL;
    }
    return t.data;
}
