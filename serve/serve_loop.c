/* serve_run: the request loop of every rank; see serve.h.
 *
 * Rank 0's main thread takes a batch from the queue: the oldest request and
 * the later waiting ones that can share its run (a generation of the same
 * size, steps, guidance and negative prompt; up to --max-batch), broadcasts
 * it to the world as a message (a header [kind, bytes] and the packed
 * requests, by world_broadcast_idle, which waits without spinning), and then
 * every rank runs it through generate_with_hooks with keep_model set, so the
 * model loaded by the warm-up stays. A batch is one run of the pipeline
 * whose jobs are the requests' images, each with its request's prompt and
 * seed (generate_hooks.job_seeds): what moedit generate does for a prompt
 * file. An edit runs alone, through edit_with_hooks. Each rank writes into a
 * temporary folder of its own; the image files are written by rank 0 (the
 * first rank of the one replica), which answers each request as soon as its
 * last image is written (generate_hooks.on_image) and removes the files. A
 * failure is agreed by a sum over the world after the run: the requests not
 * answered by then get a 500 and the loop goes on (a failed run frees the
 * model; the next request loads it again). A STOP message ends every rank's
 * loop. A request whose client left is cancelled between steps on every
 * replica running its jobs: rank 0's own by its cancel_job hook, the
 * others' by a notice from rank 0 to the replica's first rank
 * (parallel/world_notice.h). */
#include "serve/serve.h"

#include "core/error.h"
#include "core/timer.h"
#include "io/image_io.h"
#include "pipelines/generate.h"
#include "pipelines/generate_hooks.h"
#include "pipelines/model_bundle.h"
#include "parallel/mpi_wait.h"
#include "parallel/world_notice.h"
#include "pipelines/runtime.h"
#include "serve/serve_answer.h"
#include "serve/serve_folder.h"
#include "serve/serve_http.h"
#include "serve/serve_metrics.h"
#include "serve/serve_queue.h"
#include "serve/serve_replicas.h"
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

enum { MESSAGE_STOP = 0, MESSAGE_RUN = 1 };

/* Rank 0's batch being run: its jobs, and per request the first image's
 * index among the run's jobs and the images written so far. */
typedef struct serve_batch {
    serve_job **jobs;          /* handed back one by one as answered: then no longer ours to read */
    const serve_request *requests; /* [count]: rank 0's own copies (unpacked from the message) */
    int count;
    int *first_image, *written, *answered;
    int *cancelled;          /* its client left while it ran: its jobs stopped at a step boundary */
    int *notified;           /* its client left: the other replicas running its jobs were told to cancel them */
    char **files;            /* [images]: each image's file once written */
    uint64_t *seeds;
    int images;
    double started;
} serve_batch;

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
    serve_batch *batch;     /* rank 0, while a batch runs */
    int replicas;           /* --data-parallel-size (1: none) */
    int max_batch;          /* --max-batch, or the replicas when not given */
    char lost[1024];        /* a collective gave up on a rank (world_lost_a_rank): why; the server stops */
    /* A replica's first rank (not rank 0) while a batch runs: */
    uint64_t run_id;                             /* the batch's first request's id, which notices name */
    unsigned char cancel_asked[MOEDIT_MAX_OUTPUTS]; /* rank 0's notices: cancel job j (its client left) */
    int written_jobs[MOEDIT_MAX_OUTPUTS];        /* the jobs of this replica's files, in their order */
    int written_count;
} serve_state;

/* The first rank of replica r (the layout's data-parallel groups are outermost). */
static int replica_root(const serve_state *s, int replica) { return replica * (s->w->size / s->replicas); }

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

/* The options of a run of request's settings, its files named after path. */
static moedit_generate_options run_options(const serve_state *s, const serve_request *request, const char *path)
{
    moedit_generate_options o = s->o->base;
    if (request->negative_prompt) o.negative_prompt = request->negative_prompt;
    o.width = request->width;
    o.height = request->height;
    o.steps = request->steps;
    o.guidance = request->guidance;
    o.seed = request->seed;
    o.output = path;
    o.quiet = 1;
    return o;
}

/* Every rank: one request through moedit_generate's code (an edit's through
 * moedit_edit's, its image written into this rank's folder first: rank 0's
 * HTTP thread wrote it there already), files into this rank's folder. */
static int run_request(serve_state *s, const serve_request *request, moedit_generate_result *r)
{
    const char *prompts[1] = {request->prompt};
    char path[4200];
    snprintf(path, sizeof path, "%s/request-%llu.png", s->folder, (unsigned long long)request->id);
    moedit_generate_options o = run_options(s, request, path);
    o.prompts = prompts;
    o.prompt_count = 1;
    o.images_per_prompt = request->n;
    if (!request->edit) return generate_with_hooks(&o, &s->hooks, r);
    char input[4200];
    serve_request_image_path(s->folder, request->id, input, sizeof input);
    moedit_edit_options edit = {o, input, (moedit_edit_mode)request->edit_mode, request->strength};
    int status = s->w->rank == 0 ? 0 : serve_request_write_image(request, input);
    if (status == 0) status = edit_with_hooks(&edit, &s->hooks, r);
    unlink(input);
    return status;
}

/* Every rank: several generations of one size, steps, guidance and negative
 * prompt as one run, whose jobs are their images in order: request k's
 * image i has its prompt and seed + i, as moedit generate gives image i of
 * a prompt (so each file is its `moedit generate` twin's). */
static int run_requests(serve_state *s, const serve_request *requests, int count, moedit_generate_result *r)
{
    if (count == 1) return run_request(s, &requests[0], r);
    int total = 0;
    for (int k = 0; k < count; k++) total += requests[k].n;
    const char **prompts = malloc((size_t)total * sizeof *prompts);
    uint64_t *seeds = malloc((size_t)total * sizeof *seeds);
    if (!prompts || !seeds) {
        free(prompts), free(seeds);
        return error_set("out of memory batching %d requests", count);
    }
    for (int k = 0, j = 0; k < count; k++)
        for (int i = 0; i < requests[k].n; i++, j++) {
            prompts[j] = requests[k].prompt;
            seeds[j] = requests[k].seed + (uint64_t)i;
        }
    char path[4200];
    snprintf(path, sizeof path, "%s/batch-%llu.png", s->folder, (unsigned long long)requests[0].id);
    moedit_generate_options o = run_options(s, &requests[0], path);
    o.prompts = prompts;
    o.prompt_count = total;
    o.images_per_prompt = 1;
    s->hooks.job_seeds = seeds;
    int status = generate_with_hooks(&o, &s->hooks, r);
    s->hooks.job_seeds = NULL;
    free(prompts), free(seeds);
    return status;
}

static void remove_files(const moedit_generate_result *r)
{
    for (int i = 0; i < r->count; i++) unlink(r->files[i]);
}

/* May job wait for first's run? Generations of one size, steps, guidance and negative prompt. */
static int joins_batch(const serve_job *first, const serve_job *job)
{
    const serve_request *a = &first->request, *b = &job->request;
    if (a->edit || b->edit) return 0;
    if (a->width != b->width || a->height != b->height || a->steps != b->steps || a->guidance != b->guidance) return 0;
    if (!a->negative_prompt || !b->negative_prompt) return !a->negative_prompt && !b->negative_prompt;
    return strcmp(a->negative_prompt, b->negative_prompt) == 0;
}

/* "0,1": the replicas from `from` on that run any of the n jobs from
 * first_job (job j: replica j % K), each once, into text; returns how many. */
static int name_replicas(const serve_state *s, int first_job, int n, int from, char *text, size_t size)
{
    int named = 0;
    text[0] = 0;
    for (int replica = from; replica < s->replicas; replica++)
        for (int j = first_job; j < first_job + n; j++)
            if (j % s->replicas == replica) {
                snprintf(text + strlen(text), size - strlen(text), "%s%d", named++ ? "," : "", replica);
                break;
            }
    return named;
}

/* Rank 0: request k of the batch answered (its images, or e) and handed to its HTTP thread. */
static void answer(serve_state *s, int k, int failed, serve_error *e)
{
    serve_batch *b = s->batch;
    const serve_request *request = b->requests ? &b->requests[k] : &b->jobs[k]->request;
    char *body = NULL;
    if (!failed)
        body = serve_answer_images(request, b->files + b->first_image[k], (const unsigned long long *)b->seeds +
                                   b->first_image[k], request->n, e);
    if (!body) body = serve_error_json(e);
    int http_status = failed ? e->status : body && e->status == 200 ? 200 : e->status;
    for (int i = b->first_image[k]; i < b->first_image[k] + b->written[k]; i++) unlink(b->files[i]);
    if (http_status == 200) serve_metrics_images(&s->metrics, request->n);
    char where[64] = " on replica "; /* the replicas that made its images */
    if (s->replicas < 2 || !name_replicas(s, b->first_image[k], request->n, 0, where + strlen(where),
                                          sizeof where - strlen(where)))
        where[0] = 0;
    if (s->o->log)
        fprintf(s->o->log, "serve: request %llu%s: %lldx%lld, %lld steps, n %d, seed %llu%s%s: %d in %.3f s\n",
                (unsigned long long)request->id, request->edit ? " (edit)" : "", (long long)request->width,
                (long long)request->height, (long long)request->steps, request->n, (unsigned long long)request->seed,
                b->count > 1 ? " (batched)" : "", where, http_status, timer_seconds() - b->started);
    b->answered[k] = 1;
    serve_queue_finish(&s->queue, b->jobs[k], http_status, body);
}

/* The request of the batch that job `job` belongs to. */
static int request_of_job(const serve_batch *b, int job)
{
    int k = 0;
    while (k + 1 < b->count && b->first_image[k + 1] <= job) k++;
    return k;
}

/* generate_hooks.on_image on rank 0: the run wrote image `job`; a request
 * whose images are all in is answered now, before the rest of its batch. */
static void on_image(void *user, int job, const char *path, uint64_t seed)
{
    serve_state *s = user;
    serve_batch *b = s->batch;
    if (s->w->rank != 0 && s->written_count < MOEDIT_MAX_OUTPUTS) /* a replica's first rank: for the gather */
        s->written_jobs[s->written_count++] = job;
    if (!b || !b->requests || job < 0 || job >= b->images || b->files[job]) return;
    int k = request_of_job(b, job);
    if (!(b->files[job] = strdup(path))) return; /* answered 500 after the run */
    b->seeds[job] = seed;
    serve_error e = {.status = 200};
    if (++b->written[k] == b->requests[k].n) answer(s, k, 0, &e);
}

/* Rank 0: tells the first rank of every other replica running a job of a
 * request whose client left to cancel it (once per request): a notice
 * [batch id, job] (parallel/world_notice.h). Called between rank 0's own
 * steps (cancel_job) and while it naps in a wait (mpi_wait_set_idle), so
 * also after its own jobs ended, while the other replicas still run. */
static void notify_replicas(void *user)
{
    serve_state *s = user;
    serve_batch *b = s->batch;
    if (!b || !b->requests || s->replicas < 2) return;
    for (int k = 0; k < b->count; k++) {
        if (b->answered[k] || b->notified[k] || !__atomic_load_n(&b->jobs[k]->client_left, __ATOMIC_SEQ_CST)) continue;
        b->notified[k] = 1;
        char told[64] = ""; /* the replicas told, each once */
        for (int j = b->first_image[k]; j < b->first_image[k] + b->requests[k].n; j++) {
            int64_t notice[2] = {(int64_t)b->requests[0].id, j};
            if (j % s->replicas && world_notice_send(replica_root(s, j % s->replicas), notice))
                error_clear(); /* not sent: that job runs to its end, its answer dropped */
        }
        name_replicas(s, b->first_image[k], b->requests[k].n, 1, told, sizeof told);
        if (told[0] && s->o->log)
            fprintf(s->o->log, "serve: request %llu: its client left: replica %s asked to cancel it between steps\n",
                    (unsigned long long)b->requests[k].id, told);
    }
}

/* A replica's first rank (not rank 0): whether rank 0 asked to cancel job
 * `job` of this batch (its notices taken first; those of earlier batches
 * are dropped). */
static int cancel_asked(serve_state *s, int job)
{
    int64_t notice[2];
    while (world_notice_poll(notice))
        if ((uint64_t)notice[0] == s->run_id && notice[1] >= 0 && notice[1] < MOEDIT_MAX_OUTPUTS)
            s->cancel_asked[notice[1]] = 1;
    return job >= 0 && job < MOEDIT_MAX_OUTPUTS && s->cancel_asked[job];
}

/* generate_hooks.cancel_job, on every rank after each step of a job: rank
 * 0 (the only one with a batch) says to cancel the job of a request whose
 * client left; on another replica, its first rank says so once rank 0's
 * notice came; the run agrees on it over the job's ranks
 * (pipelines/denoise.c), so all of them drop it at that step boundary. */
static int cancel_job(void *user, int job, int step)
{
    serve_state *s = user;
    serve_batch *b = s->batch;
    if (s->w->rank != 0) {
        if (s->replicas < 2 || s->w->rank != replica_root(s, job % s->replicas) || !cancel_asked(s, job)) return 0;
        if (s->o->log && s->cancel_asked[job] == 1)
            fprintf(s->o->log, "serve: rank %d (replica %d): job %d of request batch %llu cancelled after step %d: its "
                    "client left\n", s->w->rank, job % s->replicas, job, (unsigned long long)s->run_id, step + 1);
        s->cancel_asked[job] = 2; /* said once */
        return 1;
    }
    notify_replicas(s);
    if (!b || !b->requests || job < 0 || job >= b->images) return 0;
    int k = request_of_job(b, job);
    if (b->answered[k] || !__atomic_load_n(&b->jobs[k]->client_left, __ATOMIC_SEQ_CST)) return 0;
    if (!b->cancelled[k] && s->o->log)
        fprintf(s->o->log, "serve: request %llu: cancelled after step %d of %lld: its client left\n",
                (unsigned long long)b->requests[k].id, step + 1, (long long)b->requests[k].steps);
    b->cancelled[k] = 1;
    return 1;
}

static int batch_init(serve_batch *b, serve_job **jobs, int count)
{
    memset(b, 0, sizeof *b);
    if (count < 1) return error_set("an empty batch");
    b->jobs = jobs;
    b->count = count;
    b->started = timer_seconds();
    for (int k = 0; k < count; k++) b->images += jobs[k]->request.n;
    b->first_image = calloc((size_t)count, sizeof *b->first_image);
    b->written = calloc((size_t)count, sizeof *b->written);
    b->answered = calloc((size_t)count, sizeof *b->answered);
    b->cancelled = calloc((size_t)count, sizeof *b->cancelled);
    b->notified = calloc((size_t)count, sizeof *b->notified);
    b->files = calloc((size_t)b->images, sizeof *b->files);
    b->seeds = calloc((size_t)b->images, sizeof *b->seeds);
    if (!b->first_image || !b->written || !b->answered || !b->cancelled || !b->notified || !b->files || !b->seeds)
        return error_set("out of memory for a batch of %d requests", count);
    for (int k = 1; k < count; k++) b->first_image[k] = b->first_image[k - 1] + jobs[k - 1]->request.n;
    return 0;
}

static void batch_free(serve_batch *b)
{
    for (int i = 0; b->files && i < b->images; i++) free(b->files[i]);
    free(b->first_image), free(b->written), free(b->answered), free(b->cancelled), free(b->notified), free(b->files), free(b->seeds);
}

/* Rank 0: runs a batch on every rank; every request is answered, as its
 * images come or after the run. Rank 0 runs its own copies of the requests,
 * unpacked from the message it sent, as every rank does: an HTTP thread
 * frees its request once answered, while the batch may still run. */
static void serve_batch_everywhere(serve_state *s, serve_job **jobs, int count)
{
    serve_batch batch;
    if (batch_init(&batch, jobs, count)) { /* out of memory: 500 (a NULL body) for each */
        for (int k = 0; k < count; k++) serve_queue_finish(&s->queue, jobs[k], 500, NULL);
        batch_free(&batch);
        error_clear();
        return;
    }
    int status = 0;
    serve_metrics_set_queue_length(&s->metrics, serve_queue_length(&s->queue));
    serve_metrics_set_running(&s->metrics, count);
    const serve_request *list[count];
    serve_request requests[count];
    int unpacked = 0;
    for (int k = 0; k < count; k++) {
        serve_metrics_observe(&s->metrics, SERVE_QUEUE_WAIT_SECONDS, batch.started - jobs[k]->accepted_at);
        list[k] = &jobs[k]->request;
    }
    uint8_t *bytes = NULL;
    size_t length = 0;
    int kind = MESSAGE_RUN;
    if (!status && (serve_request_pack_list(list, count, &bytes, &length) ||
                    serve_request_unpack_list(requests, count, &unpacked, bytes, length)))
        status = error_set("out of memory packing a request");
    if (!status) status = exchange_message(s, &kind, &bytes, &length);
    free(bytes);
    batch.requests = unpacked ? requests : NULL; /* NULL: nothing runs, the jobs are still ours to read */
    s->batch = &batch;
    mpi_wait_set_idle(notify_replicas, s);
    moedit_generate_result r = {0};
    int failed = status ? 1 : run_requests(s, requests, count, &r);
    serve_metrics_set_memory(&s->metrics, &s->hooks.device_memory);
    /* A lost rank would make the agreement wait out the timeout again. */
    failed = world_lost_a_rank(s->w) ? 1 : any_failed(s, failed);
    if (!failed && s->replicas > 1 &&
        serve_replicas_gather(s->w, s->group, s->replicas, &r, NULL, s->folder, requests[0].id, on_image, s))
        failed = 1;
    mpi_wait_set_idle(NULL, NULL);
    serve_error e;
    if (!failed)
        serve_error_set(&e, 500, "server_error", NULL, NULL, "the run ended without this request's images");
    else if (*error_message())
        serve_error_set(&e, 500, "server_error", NULL, NULL, "the image could not be made: %s", error_message());
    else
        serve_error_set(&e, 500, "server_error", NULL, NULL, "the image could not be made: another rank failed");
    serve_error left;
    serve_error_set(&left, 499, "invalid_request_error", NULL, "client_closed_request",
                    "the client left while its request ran: cancelled between steps");
    for (int k = 0; k < count; k++)
        if (!batch.answered[k]) answer(s, k, 1, batch.cancelled[k] || batch.notified[k] ? &left : &e);
    remove_files(&r);
    moedit_generate_result_free(&r);
    for (int k = 0; k < unpacked; k++) serve_request_free(&requests[k]);
    if (world_lost_a_rank(s->w)) snprintf(s->lost, sizeof s->lost, "%s", *error_message() ? error_message() : "a rank was lost");
    error_clear();
    s->batch = NULL;
    batch_free(&batch);
    serve_metrics_set_running(&s->metrics, 0);
}

/* The other ranks: run what rank 0 sends until it says stop. */
static int follow(serve_state *s)
{
    serve_request *requests = calloc((size_t)s->max_batch, sizeof *requests);
    if (!requests) return error_set("out of memory for a batch of requests");
    for (;;) {
        int kind = MESSAGE_STOP, count = 0;
        uint8_t *bytes = NULL;
        size_t length = 0;
        if (exchange_message(s, &kind, &bytes, &length)) {
            free(requests);
            return -1;
        }
        if (kind == MESSAGE_STOP) {
            free(bytes);
            free(requests);
            return 0;
        }
        int status = serve_request_unpack_list(requests, s->max_batch, &count, bytes, length)
                         ? error_set("a request arrived damaged")
                         : 0;
        free(bytes);
        moedit_generate_result r = {0};
        s->run_id = count ? requests[0].id : 0;
        memset(s->cancel_asked, 0, sizeof s->cancel_asked);
        s->written_count = 0;
        if (!status) status = run_requests(s, requests, count, &r);
        if (world_lost_a_rank(s->w)) { /* rank 0 stops too, or is the one lost: leave with the error */
            remove_files(&r);
            moedit_generate_result_free(&r);
            for (int k = 0; k < count; k++) serve_request_free(&requests[k]);
            free(requests);
            return -1;
        }
        if (!any_failed(s, status) && s->replicas > 1)
            serve_replicas_gather(s->w, s->group, s->replicas, &r, s->written_jobs, s->folder, 0, NULL, NULL);
        remove_files(&r);
        moedit_generate_result_free(&r);
        for (int k = 0; k < count; k++) serve_request_free(&requests[k]);
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
        fprintf(s->o->log, "serve: stopping: no new connections; answering the %d request(s) waiting and any running\n",
                serve_queue_length(&s->queue));
        fflush(s->o->log);
    }
    serve_queue_close(&s->queue);
    return NULL;
}

/* Rank 0 after a collective gave up on a rank: the world cannot run another
 * request, so the waiting ones get 503 and the server ends with the reason
 * (main prints it as the one line and aborts the ranks still running). */
static int refuse_waiting(serve_state *s)
{
    serve_queue_close(&s->queue);
    serve_error e;
    serve_error_set(&e, 503, "server_error", NULL, "rank_lost", "the server lost a rank and stops: %s", s->lost);
    for (serve_job *job; (job = serve_queue_pop(&s->queue, 0)) != NULL;)
        serve_queue_finish(&s->queue, job, 503, serve_error_json(&e));
    serve_http_stop(s->http);
    s->http = NULL;
    return error_set("serve: %s; the server stops", s->lost);
}

/* Rank 0: listen, then take jobs until stopped and the queue is empty. */
static int lead(serve_state *s, const serve_http_config *config)
{
    if (serve_http_start(&s->http, config)) return -1;
    if (s->o->log) {
        /* An IPv6 address goes in brackets: "http://::1:8000" is no URL a client reads. */
        const char *host = config->host ? config->host : "127.0.0.1";
        int v6 = strchr(host, ':') != NULL;
        fprintf(s->o->log, "serve: listening on http://%s%s%s:%d (model %s, %d rank%s, pid %d)\n", v6 ? "[" : "",
                host, v6 ? "]" : "", serve_http_port(s->http), s->model_id, s->w->size, s->w->size == 1 ? "" : "s",
                (int)getpid());
        fflush(s->o->log);
    }
    pthread_t watcher;
    int watching = pthread_create(&watcher, NULL, watch_for_stop, s) == 0;
    if (!watching) stop_requested = 1; /* no watcher: serve nothing rather than never stop */
    serve_job **jobs = calloc((size_t)s->max_batch, sizeof *jobs);
    if (!jobs) stop_requested = 1;
    for (;;) {
        int count = jobs ? serve_queue_pop_batch(&s->queue, 0.1, jobs, s->max_batch, joins_batch) : 0;
        if (count) serve_batch_everywhere(s, jobs, count);
        if (s->lost[0]) break;
        if (count) continue;
        if (serve_queue_closed(&s->queue) || (!watching && stop_requested) || !jobs) break;
        if (s->o->log) fflush(s->o->log);
    }
    free(jobs);
    __atomic_store_n(&s->leaving, 1, __ATOMIC_SEQ_CST);
    if (watching) pthread_join(watcher, NULL);
    if (s->lost[0]) return refuse_waiting(s);
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
    int replicas = o->base.parallel.data_parallel > 1 ? o->base.parallel.data_parallel : 1;
    int max_batch = o->max_batch ? o->max_batch : replicas;
    if (max_batch < 1 || max_batch * o->max_images > MOEDIT_MAX_OUTPUTS)
        return error_set("--max-batch %d: must be at least 1, and --max-batch x --max-images (%d) at most %d images",
                         max_batch, o->max_images, MOEDIT_MAX_OUTPUTS);
    if (o->api_key && !*o->api_key) return error_set("--api-key: an empty key");
    /* A space or control character cannot arrive: clients and proxies trim or refuse them in a header. */
    for (const char *c = o->api_key; c && *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f)
            return error_set("--api-key: the key holds a space or control character, which no Authorization "
                             "header carries intact");
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
    s.hooks.on_image = on_image;
    s.hooks.cancel_job = cancel_job;
    s.replicas = o->base.parallel.data_parallel > 1 ? o->base.parallel.data_parallel : 1;
    s.max_batch = o->max_batch ? o->max_batch : s.replicas; /* 0: one request per replica */
    s.hooks.keep_model = 1;
    model_id_of(o->base.model_dir ? o->base.model_dir : "", s.model_id, sizeof s.model_id);
    serve_http_config config = {o->host, o->port, o->api_key, o->max_body_bytes, o->max_upload_bytes, s.folder, {0},
                                s.model_id, &s.queue, &s.metrics, o->log};
    serve_limits *l = &config.limits;
    int status = check_options(o);
    if (!status) status = generate_size_multiple(o->base.model_dir, "serve", &l->size_multiple);
    if (!status) status = generate_nonsquare_max_pixels(o->base.model_dir, "serve", &l->nonsquare_max_pixels);
    l->max_side = GENERATE_MAX_SIDE;
    l->max_pixels = GENERATE_MAX_PIXELS;
    l->max_images = o->max_images;
    l->default_width = o->base.width;
    l->default_height = o->base.height;
    l->default_steps = o->base.steps;
    l->default_guidance = o->base.guidance;
    l->needs_guidance = o->base.parallel.cfg_parallel == 2;
    if (!status && !(s.host = backend_create("cpu"))) status = -1;
    /* The first group agrees on every rank's status so far (world.h). */
    if (moedit_agree(status)) status = -1;
    if (!status && !(s.group = world_group(s.w, "serve", s.host))) status = -1;
    if (!status && world_notice_open(s.w)) status = -1; /* every rank made the group: the same on every rank */
    if (!status) {
        int made = serve_folder_make(s.w, s.folder, sizeof s.folder);
        if (any_failed(&s, made)) status = made ? -1 : error_set("another rank could not make its temporary folder");
    }
    serve_metrics_init(&s.metrics);
    int have_queue = !status && !serve_queue_init(&s.queue, o->max_queue);
    if (!status && !have_queue) status = error_set("out of memory for the request queue");
    if (!status) status = warm_up(&s);
    if (!status) serve_metrics_set_memory(&s.metrics, &s.hooks.device_memory);
    if (!status && s.w->rank == 0 && s.hooks.host_warning[0]) /* as moedit generate warns, once */
        fprintf(stderr, "moedit: warning: %s\n", s.hooks.host_warning);
    if (!status) status = s.w->rank == 0 ? lead(&s, &config) : follow(&s);
    model_bundle_drop_kept();
    if (!world_lost_a_rank(s.w)) world_notice_close(); /* collective: not with a rank gone */
    if (have_queue) serve_queue_free(&s.queue);
    serve_metrics_free(&s.metrics);
    if (s.group) pg_destroy(s.group);
    if (s.host) backend_destroy(s.host);
    serve_folder_remove(s.folder); /* rank 0: its host's ranks' folders too (serve_folder.h: the paths that cannot) */
    return status;
}
