/* Timing wrapper around a process group; see pg_timed.h. */
#include "parallel/pg_timed.h"

#include "core/error.h"
#include "core/timer.h"

#include <stdlib.h>

typedef struct timed_group {
    process_group *inner;
    pg_timing *timing;
} timed_group;

static timed_group *timed_of(process_group *pg) { return pg->impl; }

/* Marks the start of an op: the device has finished what came before. */
static double op_begin(process_group *pg)
{
    if (pg->be && pg->be->device != DEVICE_CPU) pg->be->ops->synchronize(pg->be);
    return timer_seconds();
}

static int op_end(process_group *pg, double start, double bytes, int status)
{
    if (pg->be && pg->be->device != DEVICE_CPU) pg->be->ops->synchronize(pg->be);
    pg_timing *t = timed_of(pg)->timing;
    t->seconds += timer_seconds() - start;
    t->calls++;
    t->bytes += bytes;
    return status;
}

static double bytes_of(tensor t) { return t.data ? (double)tensor_nbytes(&t) : 0; }

static int timed_all_reduce(process_group *pg, tensor t)
{
    process_group *in = timed_of(pg)->inner;
    double start = op_begin(pg);
    return op_end(pg, start, bytes_of(t), in->ops->all_reduce_sum(in, t));
}

static int timed_all_reduce_max(process_group *pg, tensor t)
{
    process_group *in = timed_of(pg)->inner;
    if (!in->ops->all_reduce_max) return error_set("process group %s has no max all-reduce", pg->name);
    double start = op_begin(pg);
    return op_end(pg, start, bytes_of(t), in->ops->all_reduce_max(in, t));
}

static int timed_all_gather(process_group *pg, tensor out, tensor t, const int64_t *rows)
{
    process_group *in = timed_of(pg)->inner;
    double start = op_begin(pg);
    return op_end(pg, start, bytes_of(t), in->ops->all_gather_rows(in, out, t, rows));
}

static int timed_all_to_all(process_group *pg, tensor out, const int64_t *recv_rows, tensor t, const int64_t *send_rows)
{
    process_group *in = timed_of(pg)->inner;
    double start = op_begin(pg);
    return op_end(pg, start, bytes_of(t), in->ops->all_to_all_rows(in, out, recv_rows, t, send_rows));
}

static int timed_send_recv(process_group *pg, tensor send, int to, tensor recv, int from)
{
    process_group *in = timed_of(pg)->inner;
    double start = op_begin(pg);
    return op_end(pg, start, to < 0 ? 0 : bytes_of(send), in->ops->send_recv(in, send, to, recv, from));
}

static int timed_broadcast(process_group *pg, tensor t, int root)
{
    process_group *in = timed_of(pg)->inner;
    double start = op_begin(pg);
    return op_end(pg, start, pg->rank == root ? bytes_of(t) : 0, in->ops->broadcast(in, t, root));
}

static void timed_destroy(process_group *pg)
{
    pg_destroy(timed_of(pg)->inner);
    free(pg->impl);
    free(pg);
}

static const pg_ops timed_ops = {
    .all_reduce_sum = timed_all_reduce,
    .all_reduce_max = timed_all_reduce_max,
    .all_gather_rows = timed_all_gather,
    .all_to_all_rows = timed_all_to_all,
    .send_recv = timed_send_recv,
    .broadcast = timed_broadcast,
    .destroy = timed_destroy,
};

process_group *pg_create_timed(process_group *inner, pg_timing *timing)
{
    process_group *pg = calloc(1, sizeof *pg);
    timed_group *t = calloc(1, sizeof *t);
    if (!pg || !t) {
        free(pg), free(t);
        pg_destroy(inner);
        error_set("out of memory wrapping process group %s", inner ? inner->name : "?");
        return NULL;
    }
    t->inner = inner;
    t->timing = timing;
    *pg = *inner; /* name, rank, size, world rank and device, as the group it wraps */
    pg->ops = &timed_ops;
    pg->impl = t;
    return pg;
}
