/* Under mpirun: every collective of the MPI process groups moves the right
 * rows to the right ranks, on the groups of a real layout (uneven row counts
 * included), and one-rank groups behave the same without MPI. */
#include "core/error.h"
#include "parallel/world.h"
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

static tensor host_tensor(int64_t rows, int64_t cols)
{
    tensor t = tensor_make_2d(DTYPE_F32, DEVICE_CPU, rows, cols);
    t.data = calloc((size_t)(rows * cols), sizeof(float));
    return t;
}

/* Value of element (row, col) of the block that `rank` owns. */
static float value(int rank, int64_t row, int64_t col) { return (float)(1000 * rank + 10 * row + col); }

static void all_reduce(process_group *pg)
{
    tensor t = host_tensor(2, 3);
    float *x = t.data;
    for (int i = 0; i < 6; i++) x[i] = (float)(pg->rank + i);
    CHECK(pg->ops->all_reduce_sum(pg, t) == 0);
    int n = pg->size, sum_of_ranks = n * (n - 1) / 2;
    for (int i = 0; i < 6; i++) CHECK(x[i] == (float)(sum_of_ranks + n * i));
    free(t.data);
}

/* Rank r holds r + 1 rows; everyone gets all of them in rank order. */
static void all_gather_uneven(process_group *pg)
{
    int64_t rows[64], total = 0;
    for (int r = 0; r < pg->size; r++) total += rows[r] = r + 1;
    tensor in = host_tensor(rows[pg->rank], 2), out = host_tensor(total, 2);
    for (int64_t i = 0; i < rows[pg->rank]; i++)
        for (int c = 0; c < 2; c++) ((float *)in.data)[i * 2 + c] = value(pg->rank, i, c);
    CHECK(pg->ops->all_gather_rows(pg, out, in, rows) == 0);
    int64_t at = 0;
    for (int r = 0; r < pg->size; r++)
        for (int64_t i = 0; i < rows[r]; i++, at++)
            for (int c = 0; c < 2; c++) CHECK(((float *)out.data)[at * 2 + c] == value(r, i, c));
    free(in.data), free(out.data);
}

/* Rank r sends (r + q) % 3 rows to rank q: uneven in both directions. */
static void all_to_all_uneven(process_group *pg)
{
    int64_t send[64], recv[64], send_total = 0, recv_total = 0;
    for (int q = 0; q < pg->size; q++) {
        send_total += send[q] = (pg->rank + q) % 3;
        recv_total += recv[q] = (q + pg->rank) % 3;
    }
    tensor in = host_tensor(send_total, 2), out = host_tensor(recv_total, 2);
    int64_t at = 0;
    for (int q = 0; q < pg->size; q++)
        for (int64_t i = 0; i < send[q]; i++, at++)
            for (int c = 0; c < 2; c++) ((float *)in.data)[at * 2 + c] = value(pg->rank, 100 * q + i, c);
    CHECK(pg->ops->all_to_all_rows(pg, out, recv, in, send) == 0);
    at = 0;
    for (int q = 0; q < pg->size; q++)
        for (int64_t i = 0; i < recv[q]; i++, at++)
            for (int c = 0; c < 2; c++) CHECK(((float *)out.data)[at * 2 + c] == value(q, 100 * pg->rank + i, c));
    free(in.data), free(out.data);
}

/* Pass a block around the ring: receive from the left, send to the right. */
static void ring_pass(process_group *pg)
{
    tensor send = host_tensor(1, 4), recv = host_tensor(1, 4);
    for (int c = 0; c < 4; c++) ((float *)send.data)[c] = value(pg->rank, 0, c);
    int right = (pg->rank + 1) % pg->size, left = (pg->rank + pg->size - 1) % pg->size;
    CHECK(pg->ops->send_recv(pg, send, right, recv, left) == 0);
    for (int c = 0; c < 4; c++) CHECK(((float *)recv.data)[c] == value(left, 0, c));
    free(send.data), free(recv.data);
}

static void broadcast(process_group *pg)
{
    tensor t = host_tensor(1, 3);
    for (int c = 0; c < 3; c++) ((float *)t.data)[c] = value(pg->rank, 0, c);
    int root = pg->size - 1;
    CHECK(pg->ops->broadcast(pg, t, root) == 0);
    for (int c = 0; c < 3; c++) CHECK(((float *)t.data)[c] == value(root, 0, c));
    free(t.data);
}

static void exercise(process_group *pg)
{
    all_reduce(pg);
    all_gather_uneven(pg);
    all_to_all_uneven(pg);
    ring_pass(pg);
    broadcast(pg);
}

int main(int argc, char **argv)
{
    world w;
    if (world_init(&w, &argc, &argv)) {
        fprintf(stderr, "%s\n", error_message());
        return 1;
    }
    backend *be = backend_cpu_create();
    /* The whole world as one group, then the groups of a layout: tp2 x the rest. */
    parallel_degrees whole = {.ulysses = w.size};
    parallel_context ctx;
    CHECK_MSG(parallel_context_init(&ctx, &w, whole, be) == 0, "%s", error_message());
    exercise(ctx.groups[GROUP_ULYSSES]);
    for (int k = 0; k < GROUP_KINDS; k++)
        if (ctx.groups[k]) exercise(ctx.groups[k]);
    parallel_context_free(&ctx);
    if (w.size % 2 == 0) {
        parallel_degrees split = {.tp = 2, .cfg = w.size >= 4 ? 2 : 1, .dp = w.size >= 4 ? w.size / 4 : 1,
                                  .expert_parallel = 1};
        CHECK_MSG(parallel_context_init(&ctx, &w, split, be) == 0, "%s", error_message());
        CHECK(ctx.groups[GROUP_TP]->size == 2 && ctx.groups[GROUP_TP]->rank == w.rank % 2);
        for (int k = 0; k < GROUP_KINDS; k++)
            if (ctx.groups[k]) exercise(ctx.groups[k]);
        parallel_context_free(&ctx);
    }
    /* Expert parallelism over the world (DP2EP): cfg and dp over the ranks, one ep group of every rank. */
    if (w.size % 2 == 0) {
        parallel_degrees wide = {.cfg = 2, .dp = w.size / 2, .expert_parallel = 1, .expert_scope = EP_SCOPE_WORLD};
        CHECK_MSG(parallel_context_init(&ctx, &w, wide, be) == 0, "%s", error_message());
        CHECK(ctx.groups[GROUP_EP]->size == w.size && ctx.groups[GROUP_EP]->rank == w.rank);
        CHECK(ctx.groups[GROUP_CFG]->size == 2 && ctx.groups[GROUP_DP]->size == w.size / 2);
        exercise(ctx.groups[GROUP_EP]);
        parallel_context_free(&ctx);
    }
    backend_destroy(be);
    int status = test_finish_rank("mpi_process_groups", w.rank, w.size);
    world_finalize(&w);
    return status;
}
