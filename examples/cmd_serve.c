/* moedit serve: the OpenAI Images API over HTTP with the model resident
 * (serve/serve.h, docs/serve.md). Takes generate's model, device, layout and
 * LoRA options (its size, steps, guidance and negative prompt become a
 * request's defaults) and the server's own. SIGTERM, SIGINT or SIGHUP: stop
 * accepting, answer what was accepted, exit 0. */
#include "examples/cli.h"

#include "core/error.h"
#include "serve/serve.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: [mpirun -np N] moedit serve --model DIR [layout options] [--host 127.0.0.1] [--port 8000]\n"
    "                      [--max-queue N] [--max-images N] [--max-batch N] [--api-key KEY] [--max-upload MB]\n"
    "\n"
    "Loads the model once and answers POST /v1/images/generations and /v1/images/edits (OpenAI Images API),\n"
    "GET /v1/models, GET /health and GET /metrics (Prometheus) on rank 0; every request runs on every rank\n"
    "of the layout.\n"
    "--height, --width, --num-inference-steps, --guidance-scale and --negative-prompt are the defaults of\n"
    "requests that leave them out. See docs/serve.md.";

/* generate's options that have no meaning for a server (a request gives them, or nothing does). */
static int per_run_option(const char *name)
{
    static const char *const names[] = {"prompt",      "prompt-file", "output",          "output-latents", "json",
                                        "init-noise",  "quiet",       "routing-capture", "prompt-embeds",
                                        "num-images-per-prompt", "cache-schedule-capture"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(name, names[i])) return 1;
    return 0;
}

static void on_signal(int signo) { serve_stop(); }

static void handle_signals(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    /* SIGHUP (the terminal closed) stops it the same way: its default action
     * killed the server mid-batch and left its image folder behind. Under
     * nohup (ignored) it stays ignored. */
    struct sigaction old;
    if (sigaction(SIGHUP, NULL, &old) == 0 && old.sa_handler != SIG_IGN) sigaction(SIGHUP, &action, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int cli_serve(int argc, char **argv)
{
    cli_generate_args *a = malloc(sizeof *a);
    if (!a) return error_set("out of memory");
    cli_option generate[CLI_GENERATE_OPTIONS], options[CLI_GENERATE_OPTIONS + 8];
    int generate_count = cli_generate_options(a, generate, "serve");
    int count = 0;
    for (int i = 0; i < generate_count; i++)
        if (!per_run_option(generate[i].name)) options[count++] = generate[i];
    serve_options o = {.port = SERVE_DEFAULT_PORT, .max_queue = SERVE_DEFAULT_MAX_QUEUE,
                       .max_images = SERVE_DEFAULT_MAX_IMAGES, .max_body_bytes = SERVE_DEFAULT_MAX_BODY};
    int64_t port = SERVE_DEFAULT_PORT, max_queue = SERVE_DEFAULT_MAX_QUEUE, max_images = SERVE_DEFAULT_MAX_IMAGES,
            max_upload = SERVE_DEFAULT_MAX_UPLOAD_MB, max_batch = SERVE_DEFAULT_MAX_BATCH;
    cli_option own[] = {
        {"host", OPT_STRING, &o.host, "address to listen on (default 127.0.0.1: this machine only)", "HOST"},
        {"port", OPT_INT, &port, "TCP port (default 8000; 0: a free one, printed on stderr)", "PORT"},
        {"max-queue", OPT_INT, &max_queue, "requests waiting at most; more are answered 429 (default 16)", "N"},
        {"max-images", OPT_INT, &max_images, "images per request (n) at most (default 4)", "N"},
        {"api-key", OPT_STRING, &o.api_key, "ask every /v1 request for 'Authorization: Bearer KEY'", "KEY"},
        {"max-batch", OPT_INT, &max_batch,
         "waiting generations of one size, steps, guidance and negative prompt run as one batch of at most N, dealt "
         "over the --data-parallel-size replicas (default: that size, 1 without replicas)",
         "N"},
        {"max-upload", OPT_INT, &max_upload, "an edit's upload (image and fields) at most, in MiB (default 16)", "MB"},
    };
    for (size_t i = 0; i < sizeof own / sizeof *own; i++) options[count++] = own[i];
    int status = cli_parse(argc, argv, usage, options, count);
    if (status == 0) status = cli_generate_finish(a);
    if (status == 0 && (port < 0 || port > 65535)) status = error_set("--port %lld: must be 0..65535", (long long)port);
    if (status == 0 && (max_queue < 1 || max_queue > 100000))
        status = error_set("--max-queue %lld: must be 1..100000", (long long)max_queue);
    if (status == 0 && (max_images < 1 || max_images > MOEDIT_MAX_OUTPUTS))
        status = error_set("--max-images %lld: must be 1..%d", (long long)max_images, MOEDIT_MAX_OUTPUTS);
    if (status == 0 && (max_batch < 0 || max_batch > MOEDIT_MAX_OUTPUTS))
        status = error_set("--max-batch %lld: must be 1..%d (or 0: the default)", (long long)max_batch, MOEDIT_MAX_OUTPUTS);
    if (status == 0 && (max_upload < 1 || max_upload > 1024))
        status = error_set("--max-upload %lld: must be 1..1024 (MiB)", (long long)max_upload);
    /* Replicas serve different requests, whose image counts need not divide
     * over them; a world-wide expert group needs every rank in every MoE call. */
    if (status == 0 && a->o.parallel.expert_parallel_scope == MOEDIT_EXPERT_SCOPE_WORLD &&
        a->o.parallel.data_parallel > 1)
        status = error_set("serve: --expert-parallel-scope world with --data-parallel-size %d: the replicas serve "
                           "different requests, and every rank of a world expert group must run every MoE layer "
                           "alike; use --expert-parallel-scope branch",
                           a->o.parallel.data_parallel);
    if (status == 0) {
        o.base = a->o;
        o.max_upload_bytes = (size_t)max_upload << 20;
        o.max_batch = (int)max_batch;
        o.port = (int)port;
        o.max_queue = (int)max_queue;
        o.max_images = (int)max_images;
        o.log = stderr; /* rank 0's lines; the other ranks say only that they cancelled a job */
        handle_signals();
        status = serve_run(&o);
    }
    cli_generate_free(a);
    free(a);
    return status < 0 ? -1 : 0;
}
