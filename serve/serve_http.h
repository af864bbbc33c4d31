/* The HTTP side of `moedit serve` on rank 0: a libmicrohttpd daemon (one
 * thread per connection) that routes, authenticates and parses requests,
 * queues image requests for the generating thread and waits for their
 * answers (serve_queue.h). It never touches the model or the world's ranks.
 * A client that leaves while its request waits in the queue takes the
 * request with it: it never runs. */
#ifndef MOEDIT_SERVE_SERVE_HTTP_H
#define MOEDIT_SERVE_SERVE_HTTP_H

#include "serve/serve_metrics.h"
#include "serve/serve_queue.h"
#include "serve/serve_request.h"

#include <stddef.h>
#include <stdio.h>

typedef struct serve_http serve_http;

typedef struct serve_http_config {
    const char *host;        /* an address or a name; NULL: 127.0.0.1 */
    int port;                /* 0: any free port */
    const char *api_key;     /* NULL: none */
    size_t max_body_bytes;   /* JSON bodies */
    size_t max_upload_bytes; /* an edit's multipart body */
    const char *upload_folder; /* where an edit's image waits for its run (input-ID) */
    serve_limits limits;
    const char *model_id;    /* GET /v1/models */
    serve_queue *queue;
    serve_metrics *metrics;
    FILE *log;               /* a line per request dropped because its client left; NULL: none */
} serve_http_config;

/* Starts listening; -1 with error_set (address in use, bad host). */
int serve_http_start(serve_http **http, const serve_http_config *config);
int serve_http_port(const serve_http *http);
/* Stops accepting connections; /health answers 503 from then on. */
void serve_http_quiesce(serve_http *http);
/* Closes every connection and frees the daemon (after the queue is drained). */
void serve_http_stop(serve_http *http);

#endif
