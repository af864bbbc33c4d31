/* `moedit serve`: the OpenAI Images API over HTTP with the model resident,
 * on one rank or every rank of a parallel layout.
 *
 * Every rank loads the model once (a warm-up image of one step at the
 * smallest size loads and checks it before the port opens; the bundle is
 * then kept between requests, as moedit bench keeps it: generate_hooks
 * keep_model). Rank 0 listens (libmicrohttpd, serve_http.c) and queues the
 * requests; its main thread takes a batch at a time (waiting requests of
 * one shape, up to --max-batch), broadcasts it to every rank of the world
 * (serve_loop.c), and all ranks run it through moedit_generate's own code
 * (its jobs dealt over the data-parallel replicas, whose images come back to
 * rank 0: serve_replicas.h), so an answer's PNG is byte for byte the file
 * `moedit generate` writes with the same model path, layout and settings.
 *
 * Endpoints: POST /v1/images/generations, POST /v1/images/edits (a
 * multipart form, serve_upload.h), GET /v1/models, GET /health, GET
 * /metrics (serve_metrics.h), GET / (the page, serve_page.h). Errors are
 * OpenAI error objects (serve_request.h). docs/serve.md has the API. */
#ifndef MOEDIT_SERVE_SERVE_H
#define MOEDIT_SERVE_SERVE_H

#include "moedit.h"

#include <stddef.h>
#include <stdio.h>

typedef struct serve_options {
    /* Model, device, layout and LoRAs; height, width, steps, guidance and
     * negative prompt are the defaults of a request that leaves them out.
     * prompts and output are ignored. */
    moedit_generate_options base;
    const char *host;        /* NULL: 127.0.0.1 */
    int port;                /* 0: a free port (the log line says which) */
    int max_queue;           /* requests waiting at most; more: 429 */
    int max_images;          /* n at most */
    int max_batch;           /* waiting requests of one shape run together, at most this many;
                              * 0: the data-parallel size (1 without replicas) */
    const char *api_key;     /* NULL: none asked */
    size_t max_body_bytes;   /* larger JSON bodies: 400 */
    size_t max_upload_bytes; /* larger edit forms (the image with the fields): 400 */
    FILE *log;               /* rank 0's "listening on http://HOST:PORT" and per-request lines, a replica's
                              * first rank's cancel lines; NULL: none */
} serve_options;

#define SERVE_DEFAULT_PORT 8000
#define SERVE_DEFAULT_MAX_QUEUE 16
#define SERVE_DEFAULT_MAX_IMAGES 4
#define SERVE_DEFAULT_MAX_BATCH 0
#define SERVE_DEFAULT_MAX_BODY ((size_t)1 << 20)
#define SERVE_DEFAULT_MAX_UPLOAD_MB 16

/* Serves until serve_stop (SIGTERM, SIGINT): then stops accepting, answers
 * every request already accepted, and returns 0 on every rank. */
int serve_run(const serve_options *options);

/* Asks serve_run to stop; async-signal-safe (for a signal handler). */
void serve_stop(void);

#endif
