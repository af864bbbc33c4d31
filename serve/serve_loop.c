/* serve_run: the request loop of every rank; see serve.h.
 *
 * Rank 0's main thread takes a job from the queue, broadcasts it to the
 * world as a message (a header [kind, bytes] and the packed request, by
 * world_broadcast_idle, which waits without spinning), and then every rank runs it through
 * generate_with_hooks with keep_model set, so the model loaded by the
 * warm-up stays. Each rank writes into a temporary folder of its own; the
 * image files are written by rank 0 (the first rank of the one replica),
 * which reads them back into the answer and removes them. A failure is
 * agreed by a sum over the world after the run: the request gets a 500 and
 * the loop goes on (a failed run frees the model; the next request loads it
 * again). A STOP message ends every rank's loop. */
#include "serve/serve.h"

#include "core/error.h"
#include "core/timer.h"
#include "io/image_io.h"
#include "pipelines/generate.h"
#include "pipelines/generate_hooks.h"
#include "pipelines/model_bundle.h"
#include "pipelines/runtime.h"
#include "serve/serve_answer.h"
#include "serve/serve_http.h"
#include "serve/serve_metrics.h"
#include "serve/serve_queue.h"
#include "serve/serve_request.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

void serve_stop(void) { stop_requested = 1; }

enum { MESSAGE_STOP = 0, MESSAGE_GENERATE = 1 };

typedef struct serve_state {
    const serve_options *o;
    const world *w;
    backend *host;          /* CPU backend of the message group */
    process_group *group;   /* every rank of the world */
    char folder[4096];      /* this rank's temporary image folder */
    serve_metrics metrics;
    serve_queue queue;
    serve_http *http;
    generate_hooks hooks;
    char model_id[256];
    int leaving;            /* rank 0's loop is done (__atomic): the watcher ends */
} serve_state;

static void on_step(void *user, int step, double seconds)
{
    serve_state *s = user;
    if (s->w->rank == 0) serve_metrics_observe(&s->metrics, SERVE_STEP_SECONDS, seconds);
}

/* Rank 0 sends kind and bytes; the other ranks receive them (bytes
 * malloc'd). They wait here between requests, so without busy-waiting
 * (world_broadcast_idle). */
static int exchange_message(serve_state *s, int *kind, uint8_t **bytes, size_t *length)
{
    int64_t header[2] = {*kind, (int64_t)*length};
    if (world_broadcast_idle(s->w, header, sizeof header)) return -1;
    if (s->w->rank != 0) {
        *kind = (int)header[0];
        *length = (size_t)header[1];
        *bytes = malloc(*length + 1);
        if (!*bytes) return error_set("out of memory receiving a request");
    }
    return world_broadcast_idle(s->w, *bytes, header[1]);
}

/* 1 when any rank failed (every rank learns it). */
static int any_failed(serve_state *s, int status)
{
    if (s->w->size == 1) return status != 0;
    float failed = status != 0;
    int64_t one = 1;
    tensor t = tensor_make(DTYPE_F32, DEVICE_CPU, 1, &one);
    t.data = &failed;
    if (s->group->ops->all_reduce_sum(s->group, t)) return 1;
    return failed > 0;
}

/* Every rank: the request through moedit_generate's code (an edit's through
 * moedit_edit's, its image written into this rank's folder first: rank 0's
 * HTTP thread wrote it there already), files into this rank's folder. */
static int run_request(serve_state *s, const serve_request *request, moedit_generate_result *r)
{
    moedit_generate_options o = s->o->base;
    const char *prompts[1] = {request->prompt};
    char path[4200];
    snprintf(path, sizeof path, "%s/request-%llu.png", s->folder, (unsigned long long)request->id);
    o.prompts = prompts;
    o.prompt_count = 1;
    if (request->negative_prompt) o.negative_prompt = request->negative_prompt;
    o.width = request->width;
    o.height = request->height;
    o.steps = request->steps;
    o.guidance = request->guidance;
    o.seed = request->seed;
    o.images_per_prompt = request->n;
    o.output = path;
    o.quiet = 1;
    if (!request->edit) return generate_with_hooks(&o, &s->hooks, r);
    char input[4200];
    serve_request_image_path(s->folder, request->id, input, sizeof input);
    moedit_edit_options edit = {o, input, (moedit_edit_mode)request->edit_mode, request->strength};
    int status = s->w->rank == 0 ? 0 : serve_request_write_image(request, input);
    if (status == 0) status = edit_with_hooks(&edit, &s->hooks, r);
    unlink(input);
    return status;
}

static void remove_files(const moedit_generate_result *r)
{
    for (int i = 0; i < r->count; i++) unlink(r->files[i]);
}

/* Rank 0: runs a job on every rank and hands its answer to the HTTP thread. */
static void serve_job_everywhere(serve_state *s, serve_job *job)
{
    double started = timer_seconds();
    serve_metrics_observe(&s->metrics, SERVE_QUEUE_WAIT_SECONDS, started - job->accepted_at);
    serve_metrics_set_queue_length(&s->metrics, serve_queue_length(&s->queue));
    serve_metrics_set_running(&s->metrics, 1);
    serve_error e;
    char *body = NULL;
    uint8_t *bytes = NULL;
    size_t length = 0;
    int kind = MESSAGE_GENERATE, status = serve_request_pack(&job->request, &bytes, &length);
    if (status) error_set("out of memory packing a request");
    if (!status) status = exchange_message(s, &kind, &bytes, &length);
    free(bytes);
    moedit_generate_result r = {0};
    int failed = status ? 1 : run_request(s, &job->request, &r);
    failed = any_failed(s, failed);
    if (!failed) body = serve_answer_images(&job->request, r.files, r.seeds, r.count, &e);
    else if (*error_message())
        serve_error_set(&e, 500, "server_error", NULL, NULL, "the image could not be made: %s", error_message());
    else
        serve_error_set(&e, 500, "server_error", NULL, NULL, "the image could not be made: another rank failed");
    if (!body) body = serve_error_json(&e);
    remove_files(&r);
    int http_status = body && !failed && r.count ? 200 : failed ? 500 : e.status;
    if (!failed) serve_metrics_images(&s->metrics, r.count);
    if (s->o->log)
        fprintf(s->o->log, "serve: request %llu%s: %lldx%lld, %lld steps, n %d, seed %llu: %d in %.3f s\n",
                (unsigned long long)job->request.id, job->request.edit ? " (edit)" : "", (long long)job->request.width, (long long)job->request.height,
                (long long)job->request.steps, job->request.n, (unsigned long long)job->request.seed, http_status,
                timer_seconds() - started);
    moedit_generate_result_free(&r);
    error_clear();
    serve_metrics_set_running(&s->metrics, 0);
    serve_queue_finish(&s->queue, job, http_status, body);
}

/* The other ranks: run what rank 0 sends until it says stop. */
static int follow(serve_state *s)
{
    for (;;) {
        int kind = MESSAGE_STOP;
        uint8_t *bytes = NULL;
        size_t length = 0;
        if (exchange_message(s, &kind, &bytes, &length)) return -1;
        if (kind == MESSAGE_STOP) {
            free(bytes);
            return 0;
        }
        serve_request request;
        int status = serve_request_unpack(&request, bytes, length) ? error_set("a request arrived damaged") : 0;
        free(bytes);
        moedit_generate_result r = {0};
        if (!status) status = run_request(s, &request, &r);
        remove_files(&r);
        moedit_generate_result_free(&r);
        if (!status) serve_request_free(&request);
        any_failed(s, status);
        error_clear();
    }
}

/* Rank 0's watcher: once a stop is asked (a signal), stops accepting
 * connections and requests at once, while the main thread may be generating. */
static void *watch_for_stop(void *user)
{
    serve_state *s = user;
    const struct timespec pause = {0, 50000000};
    while (!stop_requested && !__atomic_load_n(&s->leaving, __ATOMIC_SEQ_CST)) nanosleep(&pause, NULL);
    if (!stop_requested) return NULL;
    serve_http_quiesce(s->http);
    if (s->o->log) {
        fprintf(s->o->log, "serve: stopping: no new connections; answering the %d requests waiting and the one running\n",
                serve_queue_length(&s->queue));
        fflush(s->o->log);
    }
    serve_queue_close(&s->queue);
    return NULL;
}

/* Rank 0: listen, then take jobs until stopped and the queue is empty. */
static int lead(serve_state *s, const serve_http_config *config)
{
    if (serve_http_start(&s->http, config)) return -1;
    if (s->o->log) {
        fprintf(s->o->log, "serve: listening on http://%s:%d (model %s, %d rank%s, pid %d)\n",
                config->host ? config->host : "127.0.0.1", serve_http_port(s->http), s->model_id, s->w->size,
                s->w->size == 1 ? "" : "s", (int)getpid());
        fflush(s->o->log);
    }
    pthread_t watcher;
    int watching = pthread_create(&watcher, NULL, watch_for_stop, s) == 0;
    if (!watching) stop_requested = 1; /* no watcher: serve nothing rather than never stop */
    for (;;) {
        serve_job *job = serve_queue_pop(&s->queue, 0.1);
        if (job) serve_job_everywhere(s, job);
        else if (serve_queue_closed(&s->queue) || (!watching && stop_requested)) break;
        if (s->o->log) fflush(s->o->log);
    }
    __atomic_store_n(&s->leaving, 1, __ATOMIC_SEQ_CST);
    if (watching) pthread_join(watcher, NULL);
    int kind = MESSAGE_STOP;
    uint8_t *bytes = NULL;
    size_t length = 0;
    int status = exchange_message(s, &kind, &bytes, &length);
    serve_http_stop(s->http);
    s->http = NULL;
    return status;
}

/* One step at the default size before the port opens: loads the model and
 * keeps it (every rank). */
static int warm_up(serve_state *s)
{
    serve_request request = {0};
    request.prompt = "warm-up";
    request.width = s->o->base.width;
    request.height = s->o->base.height;
    request.steps = 1;
    request.guidance = s->o->base.guidance;
    request.n = 1;
    moedit_generate_result r = {0};
    int status = run_request(s, &request, &r);
    remove_files(&r);
    moedit_generate_result_free(&r);
    return status ? error_prefix("serve: the warm-up image failed") : 0;
}

static void model_id_of(const char *dir, char *id, size_t size)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t start = n;
    while (start > 0 && dir[start - 1] != '/') start--;
    snprintf(id, size, "%.*s", (int)(n - start), dir + start);
}

static int check_options(const serve_options *o)
{
    if (!o->base.model_dir) return error_set("serve needs --model DIR");
    if (o->port < 0 || o->port > 65535) return error_set("--port %d: must be 0..65535", o->port);
    if (o->max_queue < 1 || o->max_queue > 100000) return error_set("--max-queue %d: must be 1..100000", o->max_queue);
    if (o->max_images < 1 || o->max_images > MOEDIT_MAX_OUTPUTS)
        return error_set("--max-images %d: must be 1..%d", o->max_images, MOEDIT_MAX_OUTPUTS);
    if (o->base.parallel.data_parallel > 1)
        return error_set("serve: --data-parallel-size %d: replicas serving different requests are not built yet; "
                         "serve runs one request at a time over the whole layout",
                         o->base.parallel.data_parallel);
    if (o->api_key && !*o->api_key) return error_set("--api-key: an empty key");
    return 0;
}

static int make_folder(serve_state *s)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(s->folder, sizeof s->folder, "%s/moedit-serve-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s->folder)) return error_set("cannot make a temporary folder %s for the images", s->folder);
    return 0;
}

int serve_run(const serve_options *o)
{
    serve_state s;
    memset(&s, 0, sizeof s);
    s.o = o;
    s.w = runtime_world();
    s.hooks.user = &s;
    s.hooks.on_step = on_step;
    s.hooks.keep_model = 1;
    model_id_of(o->base.model_dir ? o->base.model_dir : "", s.model_id, sizeof s.model_id);
    serve_http_config config = {o->host, o->port, o->api_key, o->max_body_bytes, o->max_upload_bytes, s.folder, {0},
                                s.model_id, &s.queue, &s.metrics};
    serve_limits *l = &config.limits;
    int status = check_options(o);
    if (!status) status = generate_size_multiple(o->base.model_dir, "serve", &l->size_multiple);
    l->max_side = GENERATE_MAX_SIDE;
    l->max_pixels = GENERATE_MAX_PIXELS;
    l->max_images = o->max_images;
    l->default_width = o->base.width;
    l->default_height = o->base.height;
    l->default_steps = o->base.steps;
    l->default_guidance = o->base.guidance;
    l->needs_guidance = o->base.parallel.cfg_parallel == 2;
    if (!status) status = make_folder(&s);
    if (!status && !(s.host = backend_create("cpu"))) status = -1;
    /* The first group agrees on every rank's status so far (world.h). */
    if (moedit_agree(status)) status = -1;
    if (!status && !(s.group = world_group(s.w, "serve", s.host))) status = -1;
    serve_metrics_init(&s.metrics);
    int have_queue = !status && !serve_queue_init(&s.queue, o->max_queue);
    if (!status && !have_queue) status = error_set("out of memory for the request queue");
    if (!status) status = warm_up(&s);
    if (!status) status = s.w->rank == 0 ? lead(&s, &config) : follow(&s);
    model_bundle_drop_kept();
    if (have_queue) serve_queue_free(&s.queue);
    serve_metrics_free(&s.metrics);
    if (s.group) pg_destroy(s.group);
    if (s.host) backend_destroy(s.host);
    if (s.folder[0]) rmdir(s.folder);
    return status;
}
