/* Process groups over MPI for CPU tensors; see process_group.h. Each group
 * has its own communicator, made with MPI_Comm_create_group so only its
 * members take part. Every collective first waits for its members to arrive
 * (a nonblocking barrier polled with naps and the collective timeout,
 * parallel/mpi_wait.h), so a rank waiting for a late or stopped peer neither
 * spins at full CPU nor waits forever; the collective itself then runs,
 * nonblocking, with every member present and polled at full speed (with the
 * timeout too: a member may stop inside it). */
#include "parallel/world.h"

#include "core/error.h"
#include "parallel/mpi_wait.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#define PG_MAX_SIZE 1024

typedef struct mpi_group {
    MPI_Comm comm;
    int counts[PG_MAX_SIZE], displacements[PG_MAX_SIZE];
    int recv_counts[PG_MAX_SIZE], recv_displacements[PG_MAX_SIZE];
    int world_ranks[PG_MAX_SIZE]; /* the members, to name them when one does not arrive */
    char label[64];               /* "process group tp" */
} mpi_group;

/* Every member of the group has reached `operation` (see the top). */
static int arrive(process_group *pg, const char *operation)
{
    mpi_group *g = pg->impl;
    mpi_wait_site site = {operation, g->label, g->world_ranks, pg->size, 0};
    return mpi_wait_arrival(g->comm, &site);
}

/* The started collective, its members all arrived: polled at full speed
 * for a while, then with naps and the timeout (a member stopped in it). */
static int finish(process_group *pg, const char *operation, MPI_Request *request)
{
    mpi_group *g = pg->impl;
    mpi_wait_site site = {operation, g->label, g->world_ranks, pg->size, MPI_WAIT_TRANSFER_SPIN_SECONDS};
    return mpi_wait(request, &site);
}

static int datatype(process_group *pg, tensor t, MPI_Datatype *type)
{
    if (t.dtype == DTYPE_F32) *type = MPI_FLOAT;
    else if (t.dtype == DTYPE_I32) *type = MPI_INT;
    else return error_set("process group %s: MPI transport carries F32 or I32 tensors, not %s", pg->name,
                          dtype_name(t.dtype));
    return 0;
}

/* Element counts and displacements of row blocks; fails past INT_MAX elements. */
static int row_blocks(process_group *pg, const int64_t *rows, int64_t cols, int *counts, int *displacements)
{
    int64_t offset = 0;
    for (int r = 0; r < pg->size; r++) {
        int64_t count = rows[r] * cols;
        if (count > INT_MAX || offset > INT_MAX)
            return error_set("process group %s: a block of %lld elements is too large for MPI", pg->name,
                             (long long)count);
        counts[r] = (int)count;
        displacements[r] = (int)offset;
        offset += count;
    }
    return 0;
}

static int mpi_all_reduce_op(process_group *pg, tensor t, MPI_Op op)
{
    mpi_group *g = pg->impl;
    MPI_Datatype type = MPI_FLOAT;
    if (datatype(pg, t, &type) || arrive(pg, "the all-reduce")) return -1;
    MPI_Request request;
    MPI_Iallreduce(MPI_IN_PLACE, t.data, (int)tensor_numel(&t), type, op, g->comm, &request);
    return finish(pg, "the all-reduce", &request);
}

static int mpi_all_reduce(process_group *pg, tensor t) { return mpi_all_reduce_op(pg, t, MPI_SUM); }

static int mpi_all_reduce_max(process_group *pg, tensor t) { return mpi_all_reduce_op(pg, t, MPI_MAX); }

static int mpi_all_gather(process_group *pg, tensor out, tensor in, const int64_t *rows)
{
    mpi_group *g = pg->impl;
    MPI_Datatype type = MPI_FLOAT;
    if (datatype(pg, in, &type) || row_blocks(pg, rows, tensor_cols(&in), g->counts, g->displacements) ||
        arrive(pg, "the all-gather"))
        return -1;
    MPI_Request request;
    MPI_Iallgatherv(in.data, g->counts[pg->rank], type, out.data, g->counts, g->displacements, type, g->comm, &request);
    return finish(pg, "the all-gather", &request);
}

static int mpi_all_to_all(process_group *pg, tensor out, const int64_t *recv_rows, tensor in, const int64_t *send_rows)
{
    mpi_group *g = pg->impl;
    MPI_Datatype type = MPI_FLOAT;
    int64_t cols = tensor_cols(&in);
    if (datatype(pg, in, &type) || row_blocks(pg, send_rows, cols, g->counts, g->displacements) ||
        row_blocks(pg, recv_rows, cols, g->recv_counts, g->recv_displacements) || arrive(pg, "the all-to-all"))
        return -1;
    MPI_Request request;
    MPI_Ialltoallv(in.data, g->counts, g->displacements, type, out.data, g->recv_counts, g->recv_displacements, type,
                   g->comm, &request);
    return finish(pg, "the all-to-all", &request);
}

/* Point to point: only the two peers take part, so no barrier; both
 * transfers are waited for as the collectives' arrivals are. */
static int mpi_send_recv(process_group *pg, tensor send, int to, tensor recv, int from)
{
    mpi_group *g = pg->impl;
    MPI_Datatype type = MPI_FLOAT;
    if (datatype(pg, send, &type)) return -1;
    MPI_Request requests[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
    if (from >= 0) MPI_Irecv(recv.data, (int)tensor_numel(&recv), type, from, 0, g->comm, &requests[0]);
    if (to >= 0) MPI_Isend(send.data, (int)tensor_numel(&send), type, to, 0, g->comm, &requests[1]);
    int peers[2] = {from >= 0 ? g->world_ranks[from] : pg->world_rank, to >= 0 ? g->world_ranks[to] : pg->world_rank};
    mpi_wait_site site = {"the send/receive", g->label, peers, 2, MPI_WAIT_TRANSFER_SPIN_SECONDS};
    return mpi_wait(&requests[0], &site) || mpi_wait(&requests[1], &site) ? -1 : 0;
}

static int mpi_broadcast(process_group *pg, tensor t, int root)
{
    mpi_group *g = pg->impl;
    MPI_Datatype type = MPI_FLOAT;
    if (datatype(pg, t, &type) || arrive(pg, "the broadcast")) return -1;
    MPI_Request request;
    MPI_Ibcast(t.data, (int)tensor_numel(&t), type, root, g->comm, &request);
    return finish(pg, "the broadcast", &request);
}

static void mpi_destroy(process_group *pg)
{
    mpi_group *g = pg->impl;
    MPI_Comm_free(&g->comm);
    free(g);
    free(pg);
}

static const pg_ops mpi_ops = {
    .all_reduce_sum = mpi_all_reduce,
    .all_reduce_max = mpi_all_reduce_max,
    .all_gather_rows = mpi_all_gather,
    .all_to_all_rows = mpi_all_to_all,
    .send_recv = mpi_send_recv,
    .broadcast = mpi_broadcast,
    .destroy = mpi_destroy,
};

process_group *pg_create_mpi(const char *name, const int *world_ranks, int count, int world_rank, backend *be)
{
    if (count > PG_MAX_SIZE) {
        error_set("process group %s: %d ranks, at most %d", name, count, PG_MAX_SIZE);
        return NULL;
    }
    process_group *pg = calloc(1, sizeof *pg);
    mpi_group *g = calloc(1, sizeof *g);
    if (!pg || !g) {
        free(pg), free(g);
        error_set("out of memory creating process group %s", name);
        return NULL;
    }
    MPI_Group world_group, group;
    MPI_Comm_group(MPI_COMM_WORLD, &world_group);
    MPI_Group_incl(world_group, count, world_ranks, &group);
    MPI_Comm_create_group(MPI_COMM_WORLD, group, 0, &g->comm);
    MPI_Group_free(&group);
    MPI_Group_free(&world_group);
    pg->ops = &mpi_ops;
    pg->name = name;
    pg->world_rank = world_rank;
    pg->be = be;
    pg->impl = g;
    MPI_Comm_rank(g->comm, &pg->rank);
    MPI_Comm_size(g->comm, &pg->size);
    for (int i = 0; i < count; i++) g->world_ranks[i] = world_ranks[i];
    snprintf(g->label, sizeof g->label, "process group %s", name);
    return pg;
}
