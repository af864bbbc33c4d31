/* moedit_bench_comm: times the process-group collectives over every rank of
 * the launcher; see moedit.h. The collectives are moedit's own (the same
 * process-group layer the parallel modes call), so the figures are what a
 * layout's exchanges can reach, with no other library in between. */
#include "bench/bench.h"

#include "core/error.h"
#include "core/timer.h"
#include "parallel/world.h"
#include "pipelines/runtime.h"

#include <stdlib.h>
#include <string.h>

typedef enum { OP_ALL_TO_ALL, OP_ALL_GATHER, OP_ALL_REDUCE, OP_SEND_RECV } comm_op;

static const char *const op_names[MOEDIT_COMM_OPS] = {"all_to_all", "all_gather", "all_reduce", "send_recv"};

typedef struct comm_bench {
    const moedit_comm_bench_options *o;
    const world *w;
    backend *be, *host;
    process_group *group;   /* every rank, on the device's transport */
    process_group *control; /* every rank, on the host: barriers and the slowest time */
    tensor in, out;         /* device buffers for the largest size */
    int64_t *counts, *ones; /* per-rank rows of the row-based collectives */
} comm_bench;

/* What each rank's links carry per byte it contributes (nccl-tests' bus
 * bandwidth factors): all-to-all and all-gather move (n - 1) / n of the
 * data over the links, all-reduce twice that, send/receive all of it. */
static double bus_factor(comm_op op, int n)
{
    switch (op) {
    case OP_ALL_TO_ALL:
    case OP_ALL_GATHER: return (double)(n - 1) / n;
    case OP_ALL_REDUCE: return 2.0 * (n - 1) / n;
    case OP_SEND_RECV: return n > 1 ? 1.0 : 0.0; /* one rank sends to no one */
    }
    return 1.0;
}

/* One run of `op` on `elements` per rank, as rows of one element. */
static int run_op(comm_bench *c, comm_op op, int64_t elements)
{
    process_group *g = c->group;
    int n = g->size;
    int64_t share = elements / n; /* all-to-all: the block for each peer */
    switch (op) {
    case OP_ALL_TO_ALL:
        for (int p = 0; p < n; p++) c->counts[p] = share;
        return g->ops->all_to_all_rows(g, tensor_row_slice(c->out, 0, share * n), c->counts,
                                       tensor_row_slice(c->in, 0, share * n), c->counts);
    case OP_ALL_GATHER:
        for (int p = 0; p < n; p++) c->counts[p] = elements;
        return g->ops->all_gather_rows(g, tensor_row_slice(c->out, 0, elements * n), tensor_row_slice(c->in, 0, elements),
                                       c->counts);
    case OP_ALL_REDUCE: return g->ops->all_reduce_sum(g, tensor_row_slice(c->in, 0, elements));
    case OP_SEND_RECV: {
        int next = (g->rank + 1) % n, previous = (g->rank + n - 1) % n;
        return g->ops->send_recv(g, tensor_row_slice(c->in, 0, elements), n > 1 ? next : -1,
                                 tensor_row_slice(c->out, 0, elements), n > 1 ? previous : -1);
    }
    }
    return error_set("unknown collective");
}

/* Barrier: every rank's device idle, then one host all-reduce. */
static int barrier(comm_bench *c)
{
    c->be->ops->synchronize(c->be);
    float one = 1.0f;
    tensor t = tensor_make_2d(DTYPE_F32, DEVICE_CPU, 1, 1);
    t.data = &one;
    return c->control->ops->all_reduce_sum(c->control, t);
}

/* The slowest rank's seconds. */
static int slowest(comm_bench *c, double seconds, double *out)
{
    float *all = malloc((size_t)c->w->size * sizeof(float));
    if (!all) return error_set("out of memory");
    float mine = (float)seconds;
    tensor in = tensor_make_2d(DTYPE_F32, DEVICE_CPU, 1, 1), gathered = tensor_make_2d(DTYPE_F32, DEVICE_CPU, c->w->size, 1);
    in.data = &mine;
    gathered.data = all;
    int status = c->control->ops->all_gather_rows(c->control, gathered, in, c->ones);
    *out = 0;
    for (int p = 0; status == 0 && p < c->w->size; p++)
        if (all[p] > *out) *out = all[p];
    free(all);
    return status;
}

static int time_op(comm_bench *c, comm_op op, int64_t bytes, moedit_comm_bench_row *row)
{
    /* Whole elements, and for the all-to-all whole blocks per peer: a size
     * that does not divide is rounded down, and the row says what ran. */
    int64_t elements = bytes / (int64_t)dtype_size(c->in.dtype);
    if (op == OP_ALL_TO_ALL) elements -= elements % c->w->size;
    double *times = calloc((size_t)c->o->iterations, sizeof(double));
    if (!times) return error_set("out of memory");
    int status = 0;
    for (int64_t i = 0; status == 0 && i < c->o->warmup + c->o->iterations; i++) {
        status = barrier(c);
        double start = timer_seconds();
        if (status == 0) status = run_op(c, op, elements);
        c->be->ops->synchronize(c->be);
        if (status == 0) status = c->be->ops->status(c->be);
        double seconds = timer_seconds() - start, worst = 0;
        if (status == 0) status = slowest(c, seconds, &worst);
        if (status == 0 && i >= c->o->warmup) times[i - c->o->warmup] = 1e3 * worst;
    }
    if (status == 0) {
        row->op = op_names[op];
        row->bytes = elements * (int64_t)dtype_size(c->in.dtype);
        row->median_ms = timer_percentile(times, c->o->iterations, 50);
        row->p10_ms = timer_percentile(times, c->o->iterations, 10);
        row->p90_ms = timer_percentile(times, c->o->iterations, 90);
        /* One rank exchanges nothing (its collectives are copies or no-ops):
         * no bandwidth to report, rather than bytes over a near-zero time. */
        row->algbw_gbs = c->w->size > 1 && row->median_ms > 0 ? (double)row->bytes / (row->median_ms * 1e6) : 0;
        row->busbw_gbs = row->algbw_gbs * bus_factor(op, c->w->size);
    }
    free(times);
    return status;
}

static int validate(const moedit_comm_bench_options *o, int ranks)
{
    if (o->iterations < 1 || o->warmup < 0) return error_set("--iterations must be >= 1 and --warmup >= 0");
    if (o->size_count < 1) return error_set("--sizes: give at least one size");
    for (int i = 0; i < o->size_count; i++)
        if (o->sizes[i] < 4 * (int64_t)ranks || o->sizes[i] > ((int64_t)1 << 34))
            return error_set("--sizes: %lld bytes is outside %d bytes (4 per rank) .. 16G",
                             (long long)o->sizes[i], 4 * ranks);
    return 0;
}

static int bench_all(comm_bench *c, moedit_comm_bench_result *r)
{
    int64_t most = 0;
    for (int i = 0; i < c->o->size_count; i++)
        if (c->o->sizes[i] > most) most = c->o->sizes[i];
    /* One element per row; out holds what an all-gather returns. */
    int64_t elements = most / (int64_t)dtype_size(c->be->dtype);
    c->in = tensor_make_2d(c->be->dtype, c->be->device, elements, 1);
    c->out = tensor_make_2d(c->be->dtype, c->be->device, elements * c->w->size, 1);
    c->in.data = c->be->ops->alloc(c->be, tensor_nbytes(&c->in));
    c->out.data = c->be->ops->alloc(c->be, tensor_nbytes(&c->out));
    if (!c->in.data || !c->out.data) return error_set("out of device memory for %lld-byte buffers", (long long)most);
    c->be->ops->fill(c->be, c->in, 1.0f);
    for (int op = 0; op < MOEDIT_COMM_OPS; op++)
        for (int i = 0; i < c->o->size_count; i++)
            if (time_op(c, (comm_op)op, c->o->sizes[i], &r->rows[r->count++])) return -1;
    return 0;
}

int moedit_bench_comm(const moedit_comm_bench_options *o, moedit_comm_bench_result *r)
{
    memset(r, 0, sizeof *r);
    comm_bench c;
    memset(&c, 0, sizeof c);
    c.o = o;
    c.w = runtime_world();
    if (validate(o, c.w->size)) return -1;
    r->ranks = c.w->size;
    c.be = backend_create(o->device);
    c.host = c.be ? backend_cpu_create() : NULL;
    c.counts = calloc((size_t)c.w->size, sizeof(int64_t));
    c.ones = calloc((size_t)c.w->size, sizeof(int64_t));
    int status = !c.be || !c.host ? -1 : c.counts && c.ones ? 0 : error_set("out of memory");
    if (status == 0 && !(c.group = world_group(c.w, "comm", c.be))) status = -1;
    if (status == 0 && !(c.control = world_group(c.w, "control", c.host))) status = -1;
    if (status == 0) {
        for (int p = 0; p < c.w->size; p++) c.ones[p] = 1;
        r->transport = c.w->size == 1 ? "self" : c.be->device == DEVICE_CUDA ? "nccl" : "mpi";
        status = bench_all(&c, r);
    }
    if (c.in.data) c.be->ops->free(c.be, c.in.data);
    if (c.out.data) c.be->ops->free(c.be, c.out.data);
    pg_destroy(c.control);
    pg_destroy(c.group);
    free(c.counts), free(c.ones);
    backend_destroy(c.host);
    backend_destroy(c.be);
    return status;
}
