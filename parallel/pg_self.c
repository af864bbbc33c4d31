/* The process group of one rank: every collective is a copy (or nothing). */
#include "parallel/process_group.h"

#include "core/error.h"

#include <stdlib.h>

static int self_all_reduce(process_group *pg, tensor t) { return 0; }

static int self_copy_rows(process_group *pg, tensor out, tensor in)
{
    if (out.data != in.data) pg->be->ops->copy(pg->be, out, in);
    return 0;
}

static int self_all_gather(process_group *pg, tensor out, tensor in, const int64_t *rows)
{
    return self_copy_rows(pg, out, in);
}

static int self_all_to_all(process_group *pg, tensor out, const int64_t *recv_rows, tensor in, const int64_t *send_rows)
{
    return self_copy_rows(pg, out, in);
}

static int self_send_recv(process_group *pg, tensor send, int to, tensor recv, int from)
{
    return to < 0 || from < 0 ? 0 : self_copy_rows(pg, recv, send);
}

static int self_broadcast(process_group *pg, tensor t, int root) { return 0; }

static void self_destroy(process_group *pg) { free(pg); }

static const pg_ops self_ops = {
    .all_reduce_sum = self_all_reduce,
    .all_reduce_max = self_all_reduce, /* one rank: t is already the max */
    .all_gather_rows = self_all_gather,
    .all_to_all_rows = self_all_to_all,
    .send_recv = self_send_recv,
    .broadcast = self_broadcast,
    .destroy = self_destroy,
};

process_group *pg_create_self(const char *name, int world_rank, backend *be)
{
    process_group *pg = calloc(1, sizeof *pg);
    if (!pg) {
        error_set("out of memory creating process group %s", name);
        return NULL;
    }
    pg->ops = &self_ops;
    pg->name = name;
    pg->rank = 0;
    pg->size = 1;
    pg->world_rank = world_rank;
    pg->be = be;
    return pg;
}

void pg_destroy(process_group *pg)
{
    if (pg) pg->ops->destroy(pg);
}

int pg_all_to_all_start(process_group *pg, tensor out, const int64_t *recv_rows, tensor in, const int64_t *send_rows,
                        int *ticket)
{
    if (pg->ops->all_to_all_rows_start) return pg->ops->all_to_all_rows_start(pg, out, recv_rows, in, send_rows, ticket);
    *ticket = -1; /* done already */
    return pg->ops->all_to_all_rows(pg, out, recv_rows, in, send_rows);
}

int pg_send_recv_start(process_group *pg, tensor send, int to, tensor recv, int from, int *ticket)
{
    if (pg->ops->send_recv_start) return pg->ops->send_recv_start(pg, send, to, recv, from, ticket);
    *ticket = -1; /* done already */
    return pg->ops->send_recv(pg, send, to, recv, from);
}

int pg_wait(process_group *pg, int ticket)
{
    return ticket < 0 ? 0 : pg->ops->wait(pg, ticket);
}
