/* Process groups over NCCL for GPU tensors (built with the CUDA backend).
 *
 * The NCCL unique id is made by the group's first rank and broadcast over
 * an MPI communicator of the group's ranks; that communicator also carries
 * every collective on host tensors (routing counts, CFG velocities), so
 * callers need not care where a tensor lives. Collectives are enqueued on
 * the CUDA backend's stream, so they order with the kernels around them
 * without extra synchronisation; a started all-to-all runs on a stream of
 * the group's own, between two events. Uneven gathers are grouped broadcasts and
 * the all-to-all grouped sends and receives. Every queued collective is
 * watched for the collective timeout (parallel/nccl_watchdog.h). */
#include "parallel/world.h"

#include "backend/cuda/backend_cuda.h"
#include "core/error.h"
#include "parallel/exchange_timing.h"
#include "parallel/nccl_watchdog.h"

#include <mpi.h>
#include <nccl.h>
#include <stdlib.h>

typedef struct nccl_group {
    ncclComm_t comm;
    process_group *host; /* MPI group over the same ranks, for host tensors */
    /* Started collectives (made at the first one): they run on `side` after
     * the backend stream's `ready` point, and `done[ticket]` marks each end. */
    cudaStream_t side;
    cudaEvent_t ready, done[PG_STARTED_MAX];
    int next_ticket;
    exchange_timing timing; /* MOEDIT_EXCHANGE_TIMING=on */
    nccl_watch *watch;      /* the collective timeout (nccl_watchdog.h) */
} nccl_group;

static int nccl_failed(process_group *pg, const char *what, ncclResult_t result)
{
    return error_set("process group %s (rank %d): NCCL %s failed: %s", pg->name, pg->world_rank, what,
                     ncclGetErrorString(result));
}

static int nccl_type(process_group *pg, tensor t, ncclDataType_t *type)
{
    switch (t.dtype) {
    case DTYPE_F32: *type = ncclFloat32; return 0;
    case DTYPE_BF16: *type = ncclBfloat16; return 0;
    case DTYPE_F16: *type = ncclFloat16; return 0;
    case DTYPE_I32: *type = ncclInt32; return 0;
    case DTYPE_F8_E4M3: /* FP8 codes never travel: activations cross ranks before quantization (docs/fp8.md) */
    case DTYPE_F8_E5M2: break;
    }
    return error_set("process group %s: no NCCL type for %s", pg->name, dtype_name(t.dtype));
}

static nccl_group *group_of(process_group *pg) { return pg->impl; }

static cudaStream_t stream_of(process_group *pg) { return (cudaStream_t)backend_cuda_stream(pg->be); }

static int on_host(tensor t) { return t.device == DEVICE_CPU; }

/* t = op over the group of t, in place, on the backend's stream. */
static int all_reduce_with(process_group *pg, tensor t, ncclRedOp_t op, const char *what, const char *watched)
{
    ncclDataType_t type = ncclFloat32;
    if (nccl_type(pg, t, &type)) return -1;
    ncclResult_t r = ncclAllReduce(t.data, t.data, (size_t)tensor_numel(&t), type, op, group_of(pg)->comm,
                                   stream_of(pg));
    nccl_watch_queued(group_of(pg)->watch, watched, stream_of(pg));
    return r == ncclSuccess ? 0 : nccl_failed(pg, what, r);
}

static int nccl_all_reduce(process_group *pg, tensor t)
{
    if (on_host(t)) return group_of(pg)->host->ops->all_reduce_sum(group_of(pg)->host, t);
    return all_reduce_with(pg, t, ncclSum, "all-reduce", "the all-reduce");
}

/* The FP8 amax of rows split over tp ranks (parallel/fp8_rows.h): F32 on
 * the device, reduced on the backend's stream between row_abs_max and
 * quantize_rows. */
static int nccl_all_reduce_max(process_group *pg, tensor t)
{
    if (on_host(t)) return group_of(pg)->host->ops->all_reduce_max(group_of(pg)->host, t);
    return all_reduce_with(pg, t, ncclMax, "max all-reduce", "the max all-reduce");
}

static int nccl_all_gather(process_group *pg, tensor out, tensor in, const int64_t *rows)
{
    if (on_host(in)) return group_of(pg)->host->ops->all_gather_rows(group_of(pg)->host, out, in, rows);
    ncclDataType_t type = ncclFloat32;
    if (nccl_type(pg, in, &type)) return -1;
    size_t row_bytes = (size_t)tensor_cols(&in) * dtype_size(in.dtype), offset = 0;
    ncclGroupStart();
    for (int r = 0; r < pg->size; r++) {
        size_t count = (size_t)(rows[r] * tensor_cols(&in));
        ncclBroadcast(in.data, (char *)out.data + offset, count, type, r, group_of(pg)->comm, stream_of(pg));
        offset += (size_t)rows[r] * row_bytes;
    }
    ncclResult_t r = ncclGroupEnd();
    nccl_watch_queued(group_of(pg)->watch, "the all-gather", stream_of(pg));
    return r == ncclSuccess ? 0 : nccl_failed(pg, "all-gather", r);
}

static int all_to_all_on(process_group *pg, cudaStream_t stream, tensor out, const int64_t *recv_rows, tensor in,
                         const int64_t *send_rows)
{
    ncclDataType_t type = ncclFloat32;
    if (nccl_type(pg, in, &type)) return -1;
    int64_t cols = tensor_cols(&in);
    size_t element = dtype_size(in.dtype), sent = 0, received = 0;
    ncclGroupStart();
    for (int q = 0; q < pg->size; q++) {
        if (send_rows[q])
            ncclSend((char *)in.data + sent, (size_t)(send_rows[q] * cols), type, q, group_of(pg)->comm, stream);
        if (recv_rows[q])
            ncclRecv((char *)out.data + received, (size_t)(recv_rows[q] * cols), type, q, group_of(pg)->comm,
                     stream);
        sent += (size_t)(send_rows[q] * cols) * element;
        received += (size_t)(recv_rows[q] * cols) * element;
    }
    ncclResult_t r = ncclGroupEnd();
    nccl_watch_queued(group_of(pg)->watch, "the all-to-all", stream);
    return r == ncclSuccess ? 0 : nccl_failed(pg, "all-to-all", r);
}

static int nccl_all_to_all(process_group *pg, tensor out, const int64_t *recv_rows, tensor in, const int64_t *send_rows)
{
    if (on_host(in)) return group_of(pg)->host->ops->all_to_all_rows(group_of(pg)->host, out, recv_rows, in, send_rows);
    return all_to_all_on(pg, stream_of(pg), out, recv_rows, in, send_rows);
}

static int cuda_failed(process_group *pg, const char *what, cudaError_t status)
{
    return error_set("process group %s (rank %d): %s: %s", pg->name, pg->world_rank, what, cudaGetErrorString(status));
}

static int side_stream_ready(process_group *pg)
{
    nccl_group *g = group_of(pg);
    if (g->side) return 0;
    cudaError_t status = cudaStreamCreateWithFlags(&g->side, cudaStreamNonBlocking);
    if (status == cudaSuccess) status = cudaEventCreateWithFlags(&g->ready, cudaEventDisableTiming);
    for (int i = 0; i < PG_STARTED_MAX && status == cudaSuccess; i++)
        status = cudaEventCreateWithFlags(&g->done[i], cudaEventDisableTiming);
    if (status == cudaSuccess) exchange_timing_init(&g->timing, stream_of(pg));
    return status == cudaSuccess ? 0 : cuda_failed(pg, "making the stream for started collectives", status);
}

/* Started exchanges queue in order on the group's one side stream, after
 * the work queued so far on the backend's stream; every rank starts them in
 * the same order. A caller waits for them before any other group's next
 * collective, so the side stream overlaps collectives with kernels, never
 * with other collectives (which NCCL does not promise to make progress
 * together). side_begin and side_end bracket one exchange. */
static int side_begin(process_group *pg)
{
    nccl_group *g = group_of(pg);
    if (side_stream_ready(pg)) return -1;
    cudaError_t status = cudaEventRecord(g->ready, stream_of(pg));
    if (status == cudaSuccess) status = cudaStreamWaitEvent(g->side, g->ready, 0);
    if (status == cudaSuccess) exchange_timing_start(&g->timing, g->next_ticket, g->side);
    return status == cudaSuccess ? 0 : cuda_failed(pg, "starting an exchange", status);
}

static int side_end(process_group *pg, int *ticket)
{
    nccl_group *g = group_of(pg);
    int t = g->next_ticket;
    g->next_ticket = (t + 1) % PG_STARTED_MAX;
    exchange_timing_end(&g->timing, t, g->side);
    cudaError_t status = cudaEventRecord(g->done[t], g->side);
    if (status != cudaSuccess) return cuda_failed(pg, "starting an exchange", status);
    *ticket = t;
    return 0;
}

static int nccl_all_to_all_start(process_group *pg, tensor out, const int64_t *recv_rows, tensor in,
                                 const int64_t *send_rows, int *ticket)
{
    *ticket = -1;
    if (on_host(in)) return nccl_all_to_all(pg, out, recv_rows, in, send_rows);
    if (side_begin(pg) || all_to_all_on(pg, group_of(pg)->side, out, recv_rows, in, send_rows)) return -1;
    return side_end(pg, ticket);
}

static int nccl_wait(process_group *pg, int ticket)
{
    exchange_timing_wait(&group_of(pg)->timing, ticket, stream_of(pg));
    cudaError_t status = cudaStreamWaitEvent(stream_of(pg), group_of(pg)->done[ticket], 0);
    return status == cudaSuccess ? 0 : cuda_failed(pg, "waiting for an exchange", status);
}

static int send_recv_on(process_group *pg, cudaStream_t stream, tensor send, int to, tensor recv, int from)
{
    ncclDataType_t type = ncclFloat32;
    if (nccl_type(pg, send, &type)) return -1;
    ncclGroupStart();
    if (to >= 0 && tensor_numel(&send) > 0)
        ncclSend(send.data, (size_t)tensor_numel(&send), type, to, group_of(pg)->comm, stream);
    if (from >= 0 && tensor_numel(&recv) > 0)
        ncclRecv(recv.data, (size_t)tensor_numel(&recv), type, from, group_of(pg)->comm, stream);
    ncclResult_t r = ncclGroupEnd();
    nccl_watch_queued(group_of(pg)->watch, "the send/receive", stream);
    return r == ncclSuccess ? 0 : nccl_failed(pg, "send/receive", r);
}

static int nccl_send_recv(process_group *pg, tensor send, int to, tensor recv, int from)
{
    if (on_host(send)) return group_of(pg)->host->ops->send_recv(group_of(pg)->host, send, to, recv, from);
    return send_recv_on(pg, stream_of(pg), send, to, recv, from);
}

static int nccl_send_recv_start(process_group *pg, tensor send, int to, tensor recv, int from, int *ticket)
{
    *ticket = -1;
    if (on_host(send)) return nccl_send_recv(pg, send, to, recv, from);
    if (side_begin(pg) || send_recv_on(pg, group_of(pg)->side, send, to, recv, from)) return -1;
    return side_end(pg, ticket);
}

static int nccl_broadcast(process_group *pg, tensor t, int root)
{
    if (on_host(t)) return group_of(pg)->host->ops->broadcast(group_of(pg)->host, t, root);
    ncclDataType_t type = ncclFloat32;
    if (nccl_type(pg, t, &type)) return -1;
    ncclResult_t r = ncclBroadcast(t.data, t.data, (size_t)tensor_numel(&t), type, root, group_of(pg)->comm,
                                   stream_of(pg));
    nccl_watch_queued(group_of(pg)->watch, "the broadcast", stream_of(pg));
    return r == ncclSuccess ? 0 : nccl_failed(pg, "broadcast", r);
}

static void nccl_destroy(process_group *pg)
{
    nccl_group *g = group_of(pg);
    if (g->side) {
        cudaStreamSynchronize(g->side);
        exchange_timing_report(&g->timing, pg->name, pg->world_rank);
        cudaStreamDestroy(g->side);
        cudaEventDestroy(g->ready);
        for (int i = 0; i < PG_STARTED_MAX; i++) cudaEventDestroy(g->done[i]);
    }
    nccl_watch_stop(g->watch);
    ncclCommDestroy(g->comm);
    pg_destroy(g->host);
    free(g);
    free(pg);
}

static const pg_ops nccl_ops = {
    .all_reduce_sum = nccl_all_reduce,
    .all_reduce_max = nccl_all_reduce_max,
    .all_gather_rows = nccl_all_gather,
    .all_to_all_rows = nccl_all_to_all,
    .all_to_all_rows_start = nccl_all_to_all_start,
    .wait = nccl_wait,
    .send_recv = nccl_send_recv,
    .send_recv_start = nccl_send_recv_start,
    .broadcast = nccl_broadcast,
    .destroy = nccl_destroy,
};

/* NCCL connects the point-to-point channels that send/receive use (moedit's
 * all-to-all, VAE halos, ring K/V passing) at their first use, whatever
 * NCCL_RUNTIME_CONNECT says: a fresh group's first all-to-all or halo
 * exchange took about a second (docs/benchmarks.md, "Figures cited by
 * source comments"), which landed in the first step or VAE decode. One
 * element to and from every peer while the group is made connects them all
 * where load time is counted. */
static int connect_peers(process_group *pg)
{
    backend *be = pg->be;
    if (pg->size < 2) return 0;
    int64_t *ones = malloc((size_t)pg->size * sizeof *ones);
    tensor both = tensor_make_2d(DTYPE_F32, be->device, 2 * (int64_t)pg->size, 1);
    both.data = ones ? be->ops->alloc(be, tensor_nbytes(&both)) : NULL;
    if (!both.data) {
        free(ones);
        return error_set("out of memory connecting process group %s", pg->name);
    }
    for (int p = 0; p < pg->size; p++) ones[p] = 1;
    be->ops->fill(be, both, 0.0f);
    int status = nccl_all_to_all(pg, tensor_row_slice(both, pg->size, pg->size), ones,
                                 tensor_row_slice(both, 0, pg->size), ones);
    be->ops->synchronize(be);
    be->ops->free(be, both.data);
    free(ones);
    return status;
}

process_group *pg_create_nccl(const char *name, const int *world_ranks, int count, int world_rank, backend *be)
{
    process_group *host = pg_create_mpi(name, world_ranks, count, world_rank, be);
    process_group *pg = calloc(1, sizeof *pg);
    nccl_group *g = calloc(1, sizeof *g);
    if (!host || !pg || !g) {
        pg_destroy(host);
        free(pg), free(g);
        if (host) error_set("out of memory creating process group %s", name);
        return NULL;
    }
    *pg = *host;
    pg->ops = &nccl_ops;
    pg->impl = g;
    g->host = host;
    /* NCCL >= 2.22 connects a communicator's peers at its first collective; that cost (seconds:
     * docs/benchmarks.md) then lands inside the first timed step or image of every fresh group.
     * Connect while the group is made instead, where load time is counted. A user's own
     * NCCL_RUNTIME_CONNECT wins. */
    setenv("NCCL_RUNTIME_CONNECT", "0", 0);
    ncclUniqueId id;
    if (host->rank == 0) ncclGetUniqueId(&id);
    tensor id_bytes = tensor_make_2d(DTYPE_I32, DEVICE_CPU, 1, sizeof id / 4);
    id_bytes.data = &id;
    ncclResult_t r = host->ops->broadcast(host, id_bytes, 0) == 0
                         ? ncclCommInitRank(&g->comm, host->size, id, host->rank)
                         : ncclInternalError;
    if (r != ncclSuccess) {
        nccl_failed(pg, "initialisation", r);
        pg_destroy(host);
        free(g), free(pg);
        return NULL;
    }
    if (!(g->watch = nccl_watch_start(g->comm, name, world_rank)) || connect_peers(pg)) {
        nccl_destroy(pg);
        return NULL;
    }
    return pg;
}
