/* The HTTP side of `moedit serve`; see serve_http.h. libmicrohttpd parses
 * HTTP; this file routes by path and method, checks the API key, gathers
 * bodies (at most max_body_bytes) and turns every outcome into a JSON answer.
 * The listening socket is made here, so a bind failure names its reason. */
#include "serve/serve_http.h"

#include "core/error.h"
#include "core/timer.h"
#include "serve/serve_page.h"
#include "serve/serve_upload.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct serve_http {
    struct MHD_Daemon *daemon;
    serve_http_config c;
    int listen_fd, port;
    int stopping;          /* read and written with __atomic */
    uint64_t next_id;      /* __atomic */
    time_t started;
};

/* One connection's request body, gathered across calls: a JSON body as
 * bytes, an edit's form by the post processor. */
typedef struct connection_state {
    char *body;
    size_t used, capacity;
    int too_large;
    int is_upload;
    serve_upload upload;
} connection_state;

static enum MHD_Result respond(struct MHD_Connection *connection, int status, const char *content_type, char *body)
{
    static char out_of_memory[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,"
                                  "\"code\":null}}";
    struct MHD_Response *response =
        body ? MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE)
             : MHD_create_response_from_buffer(strlen(out_of_memory), out_of_memory, MHD_RESPMEM_PERSISTENT);
    if (!body) status = 500;
    if (!response) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, body ? content_type : "application/json");
    enum MHD_Result result = MHD_queue_response(connection, (unsigned)status, response);
    MHD_destroy_response(response);
    return result;
}

static enum MHD_Result respond_error(serve_http *h, struct MHD_Connection *connection, const char *endpoint,
                                     const serve_error *e)
{
    serve_metrics_count(h->c.metrics, endpoint, e->status);
    return respond(connection, e->status, "application/json", serve_error_json(e));
}

static enum MHD_Result respond_json(serve_http *h, struct MHD_Connection *connection, const char *endpoint, int status,
                                    cJSON *root)
{
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    serve_metrics_count(h->c.metrics, endpoint, text ? status : 500);
    return respond(connection, status, "application/json", text);
}

/* "Authorization: Bearer KEY" against --api-key; 0 when it matches or none is set. */
static int check_key(serve_http *h, struct MHD_Connection *connection, serve_error *e)
{
    if (!h->c.api_key) return 0;
    const char *header = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!header) return serve_error_set(e, 401, "invalid_request_error", NULL, "missing_api_key",
                                        "this server needs an API key: send 'Authorization: Bearer KEY'");
    const char *given = strncmp(header, "Bearer ", 7) ? "" : header + 7;
    size_t n = strlen(h->c.api_key), m = strlen(given);
    unsigned diff = n != m; /* compared in full whatever the first difference */
    for (size_t i = 0; i < n; i++) diff |= (unsigned)(h->c.api_key[i] ^ (i < m ? given[i] : 0));
    if (diff) return serve_error_set(e, 401, "invalid_request_error", NULL, "invalid_api_key", "incorrect API key provided");
    return 0;
}

/* A seed for a request that gives none: 53 bits of splitmix64 over the clock and the request id. */
static uint64_t draw_seed(uint64_t id)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t z = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec + id * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (z ^ (z >> 31)) & ((1ull << 53) - 1);
}

/* Has the client closed its end? The connection's thread waits inside this
 * request's handler, so libmicrohttpd reads nothing from the socket
 * meanwhile and cannot notice (its completed callback would come only after
 * the handler returns); a peek at the socket (its fd from
 * MHD_get_connection_info) tells: end of stream or an error means gone. */
static int client_gone(void *user)
{
    struct MHD_Connection *connection = user;
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!info) return 0;
    char byte;
    ssize_t got = recv(info->connect_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* A parsed image request: queued, waited for, answered. The HTTP thread
 * owns the job; the generating thread fills its answer. */
static enum MHD_Result run_job(serve_http *h, struct MHD_Connection *connection, const char *endpoint, serve_job *job)
{
    serve_error e;
    job->accepted_at = timer_seconds();
    int pushed = serve_queue_push(h->c.queue, job);
    if (pushed != 0) {
        if (pushed == SERVE_QUEUE_FULL)
            serve_error_set(&e, 429, "rate_limit_error", NULL, "queue_full",
                            "the server's queue is full (%d requests waiting); retry later", h->c.queue->capacity);
        else
            serve_error_set(&e, 503, "server_error", NULL, "shutting_down", "the server is shutting down");
        return respond_error(h, connection, endpoint, &e);
    }
    serve_metrics_set_queue_length(h->c.metrics, serve_queue_length(h->c.queue));
    if (serve_queue_wait_unless_gone(h->c.queue, job, client_gone, connection)) {
        /* Status 499 (nginx's "client closed request") in the metrics; MHD_NO closes the connection. */
        serve_metrics_count(h->c.metrics, endpoint, 499);
        serve_metrics_set_queue_length(h->c.metrics, serve_queue_length(h->c.queue));
        if (h->c.log)
            fprintf(h->c.log, "serve: request %llu: dropped from the queue after %.3f s: its client left\n",
                    (unsigned long long)job->request.id, timer_seconds() - job->accepted_at);
        return MHD_NO;
    }
    if (__atomic_load_n(&job->client_left, __ATOMIC_SEQ_CST)) { /* nobody to answer: cancelled, or its answer dropped */
        serve_metrics_count(h->c.metrics, endpoint, 499);
        return MHD_NO;
    }
    serve_metrics_observe(h->c.metrics, SERVE_REQUEST_SECONDS, timer_seconds() - job->accepted_at);
    serve_metrics_count(h->c.metrics, endpoint, job->body ? job->http_status : 500);
    enum MHD_Result result = respond(connection, job->http_status, "application/json", job->body);
    job->body = NULL;
    return result;
}

/* A parsed request's number (the parser clears the struct) and its seed when it gave none. */
static void number_request(serve_http *h, serve_request *r)
{
    r->id = __atomic_fetch_add(&h->next_id, 1, __ATOMIC_SEQ_CST);
    if (!r->seed_given) r->seed = draw_seed(r->id);
}

static void free_job(serve_job *job)
{
    if (!job) return;
    serve_request_free(&job->request);
    free(job->body);
    free(job);
}

static enum MHD_Result handle_generation(serve_http *h, struct MHD_Connection *connection, connection_state *s)
{
    const char *endpoint = "images_generations";
    serve_error e;
    if (s->too_large)
        return serve_error_set(&e, 400, "invalid_request_error", NULL, "body_too_large",
                               "the request body is larger than %zu bytes", h->c.max_body_bytes),
               respond_error(h, connection, endpoint, &e);
    serve_job *job = calloc(1, sizeof *job);
    if (!job) return respond(connection, 500, "application/json", NULL);
    if (serve_request_parse(&job->request, s->body, s->used, &h->c.limits, &e)) {
        free(job);
        return respond_error(h, connection, endpoint, &e);
    }
    number_request(h, &job->request);
    enum MHD_Result result = run_job(h, connection, endpoint, job);
    free_job(job);
    return result;
}

/* POST /v1/images/edits: the form, its image checked here (a bad image is
 * the client's 400, not a failed run), then as a generation. The image
 * waits in upload_folder/input-ID for the run, which removes it. */
static enum MHD_Result handle_edit(serve_http *h, struct MHD_Connection *connection, connection_state *s)
{
    const char *endpoint = "images_edits";
    serve_error e;
    if (serve_upload_finish(&s->upload, &e)) return respond_error(h, connection, endpoint, &e);
    serve_job *job = calloc(1, sizeof *job);
    if (!job) return respond(connection, 500, "application/json", NULL);
    size_t bytes;
    uint8_t *image = serve_upload_take_image(&s->upload, &bytes);
    if (serve_request_parse_edit(&job->request, s->upload.fields, image, bytes, &h->c.limits, &e)) {
        free(job);
        return respond_error(h, connection, endpoint, &e);
    }
    number_request(h, &job->request);
    char path[4200];
    serve_request_image_path(h->c.upload_folder, job->request.id, path, sizeof path);
    if (serve_request_check_image(&job->request, path, &h->c.limits, &e)) {
        free_job(job);
        return respond_error(h, connection, endpoint, &e);
    }
    enum MHD_Result result = run_job(h, connection, endpoint, job);
    unlink(path); /* gone already when it ran; here when it was refused (queue full, stopping) */
    free_job(job);
    return result;
}

static enum MHD_Result handle_models(serve_http *h, struct MHD_Connection *connection, connection_state *s)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *model = cJSON_CreateObject();
    cJSON_AddStringToObject(model, "id", h->c.model_id);
    cJSON_AddStringToObject(model, "object", "model");
    cJSON_AddNumberToObject(model, "created", (double)h->started);
    cJSON_AddStringToObject(model, "owned_by", "moedit");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "data"), model);
    return respond_json(h, connection, "models", 200, root);
}

static enum MHD_Result handle_health(serve_http *h, struct MHD_Connection *connection, connection_state *s)
{
    int stopping = __atomic_load_n(&h->stopping, __ATOMIC_SEQ_CST);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "status", stopping ? "stopping" : "ok");
    cJSON_AddStringToObject(root, "model", h->c.model_id);
    cJSON_AddNumberToObject(root, "queue_length", serve_queue_length(h->c.queue));
    return respond_json(h, connection, "health", stopping ? 503 : 200, root);
}

static enum MHD_Result handle_metrics(serve_http *h, struct MHD_Connection *connection, connection_state *s)
{
    serve_metrics_set_queue_length(h->c.metrics, serve_queue_length(h->c.queue));
    serve_metrics_count(h->c.metrics, "metrics", 200);
    return respond(connection, 200, "text/plain; version=0.0.4", serve_metrics_text(h->c.metrics));
}

/* GET /: the page (serve/page.html, in the binary). */
static enum MHD_Result handle_page(serve_http *h, struct MHD_Connection *connection, connection_state *s)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer(serve_page_html_size, (void *)serve_page_html, MHD_RESPMEM_PERSISTENT);
    if (!response) return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
    serve_metrics_count(h->c.metrics, "page", 200);
    enum MHD_Result result = MHD_queue_response(connection, MHD_HTTP_OK, response);
    MHD_destroy_response(response);
    return result;
}

typedef struct route {
    const char *path, *method, *endpoint;
    int needs_key;
    enum MHD_Result (*handle)(serve_http *h, struct MHD_Connection *connection, connection_state *s);
} route;

#define EDITS_PATH "/v1/images/edits"

static const route routes[] = {
    {"/v1/images/generations", MHD_HTTP_METHOD_POST, "images_generations", 1, handle_generation},
    {EDITS_PATH, MHD_HTTP_METHOD_POST, "images_edits", 1, handle_edit},
    {"/v1/models", MHD_HTTP_METHOD_GET, "models", 1, handle_models},
    {"/health", MHD_HTTP_METHOD_GET, "health", 0, handle_health},
    {"/metrics", MHD_HTTP_METHOD_GET, "metrics", 0, handle_metrics},
    /* The page itself asks for the key (its requests to /v1/ carry it). */
    {"/", MHD_HTTP_METHOD_GET, "page", 0, handle_page},
};

static enum MHD_Result dispatch(serve_http *h, struct MHD_Connection *connection, const char *url, const char *method,
                                connection_state *s)
{
    serve_error e;
    const route *r = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof *routes && !r; i++)
        if (!strcmp(url, routes[i].path)) r = &routes[i];
    if (!r) {
        serve_error_set(&e, 404, "invalid_request_error", NULL, "not_found", "no endpoint %.200s", url);
        return respond_error(h, connection, "other", &e);
    }
    if (strcmp(method, r->method)) {
        serve_error_set(&e, 405, "invalid_request_error", NULL, "method_not_allowed", "%s takes %s, not %.16s", r->path,
                        r->method, method);
        return respond_error(h, connection, r->endpoint, &e);
    }
    if (r->needs_key && check_key(h, connection, &e)) return respond_error(h, connection, r->endpoint, &e);
    return r->handle(h, connection, s);
}

static int gather(serve_http *h, connection_state *s, const char *data, size_t n)
{
    if (s->too_large || s->used + n > h->c.max_body_bytes) {
        s->too_large = 1;
        return 0;
    }
    return serve_bytes_append(&s->body, &s->used, &s->capacity, data, n);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **connection_cls)
{
    serve_http *h = cls;
    connection_state *s = *connection_cls;
    if (!s) {
        if (!(s = calloc(1, sizeof *s)) || gather(h, s, "", 0)) {
            free(s);
            return MHD_NO;
        }
        /* An edit's form goes through the post processor as it arrives. */
        s->is_upload = !strcmp(url, EDITS_PATH) && !strcmp(method, MHD_HTTP_METHOD_POST);
        if (s->is_upload && serve_upload_begin(&s->upload, connection, h->c.max_upload_bytes)) {
            serve_upload_free(&s->upload);
            free(s->body);
            free(s);
            return MHD_NO;
        }
        *connection_cls = s;
        return MHD_YES;
    }
    if (*upload_data_size) {
        int status = 0;
        if (s->is_upload) serve_upload_feed(&s->upload, upload_data, *upload_data_size);
        else status = gather(h, s, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return status ? MHD_NO : MHD_YES;
    }
    return dispatch(h, connection, url, method, s);
}

static void on_completed(void *cls, struct MHD_Connection *connection, void **connection_cls,
                         enum MHD_RequestTerminationCode code)
{
    connection_state *s = *connection_cls;
    if (s) {
        free(s->body);
        if (s->is_upload) serve_upload_free(&s->upload);
    }
    free(s);
    *connection_cls = NULL;
}

/* A listening TCP socket on host:port (port 0: any free one). */
static int open_listener(const char *host, int port, int *fd_out, int *port_out, int *ipv6)
{
    struct addrinfo hints = {0}, *found = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    int rc = getaddrinfo(host, service, &hints, &found);
    if (rc) return error_set("--host %s: %s", host, gai_strerror(rc));
    int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, found->ai_addr, found->ai_addrlen) || listen(fd, 128)) {
        int err = errno;
        if (fd >= 0) close(fd);
        freeaddrinfo(found);
        return error_set("cannot listen on %s port %d: %s", host, port, strerror(err));
    }
    *ipv6 = found->ai_family == AF_INET6;
    freeaddrinfo(found);
    struct sockaddr_storage bound;
    socklen_t size = sizeof bound;
    getsockname(fd, (struct sockaddr *)&bound, &size);
    *port_out = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
    *fd_out = fd;
    return 0;
}

int serve_http_start(serve_http **out, const serve_http_config *c)
{
    serve_http *h = calloc(1, sizeof *h);
    if (!h) return error_set("out of memory starting the HTTP server");
    h->c = *c;
    if (!h->c.host) h->c.host = "127.0.0.1";
    h->started = time(NULL);
    h->next_id = 1; /* 0 is the warm-up's */
    int ipv6 = 0;
    if (open_listener(h->c.host, c->port, &h->listen_fd, &h->port, &ipv6)) {
        free(h);
        return -1;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC |
                     (ipv6 ? MHD_USE_IPv6 : 0);
    h->daemon = MHD_start_daemon(flags, (uint16_t)h->port, NULL, NULL, on_request, h, MHD_OPTION_LISTEN_SOCKET,
                                 h->listen_fd, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)(c->queue->capacity + 64),
                                 MHD_OPTION_CONNECTION_TIMEOUT, 600u, MHD_OPTION_END);
    if (!h->daemon) {
        close(h->listen_fd);
        free(h);
        return error_set("libmicrohttpd could not start on %s port %d", c->host ? c->host : "127.0.0.1", c->port);
    }
    *out = h;
    return 0;
}

int serve_http_port(const serve_http *h) { return h->port; }

void serve_http_quiesce(serve_http *h)
{
    __atomic_store_n(&h->stopping, 1, __ATOMIC_SEQ_CST);
    if (h->listen_fd < 0) return;
    MHD_socket fd = MHD_quiesce_daemon(h->daemon);
    if (fd != MHD_INVALID_SOCKET) close(fd);
    h->listen_fd = -1;
}

void serve_http_stop(serve_http *h)
{
    if (!h) return;
    serve_http_quiesce(h);
    MHD_stop_daemon(h->daemon);
    free(h);
}
