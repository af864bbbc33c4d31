/* parallel/exchange_timing on two CUDA streams, with host functions that
 * sleep standing in for exchanges (no second GPU needed):
 *   exchange 0 runs 20 ms while the compute stream waits for it at once:
 *     20 ms running, ~20 ms waited;
 *   exchange 1 runs 10 ms and has ended (the host waits for it) before the
 *     compute stream is told to wait: 10 ms running, nothing waited.
 * Totals: 2 exchanges, ~30 ms running, ~20 ms waited, 2 waits. Host sleeps
 * run at least as long as asked, so the bounds allow a few ms over. (The
 * driver runs host functions one at a time, even from different streams, so
 * the compute stream is never given a sleep of its own beside one.) Without
 * a GPU the test exits 77 (ctest: skipped). */
#define _POSIX_C_SOURCE 200809L
#include "parallel/exchange_timing.h"
#include "test_util.h"

#include <stdlib.h>
#include <time.h>

static void CUDART_CB sleep_ms(void *ms)
{
    struct timespec t = {0, (long)(intptr_t)ms * 1000000L};
    nanosleep(&t, NULL);
}

static int within(double value, double low, double high) { return value >= low && value <= high; }

int main(void)
{
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        printf("test_cuda_exchange_timing: skipped: no CUDA device\n");
        return 77;
    }
    cudaStream_t compute, side;
    cudaEvent_t done[2];
    CHECK(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking) == cudaSuccess);
    CHECK(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking) == cudaSuccess);
    for (int i = 0; i < 2; i++) CHECK(cudaEventCreateWithFlags(&done[i], cudaEventDisableTiming) == cudaSuccess);

    exchange_timing off;
    setenv("MOEDIT_EXCHANGE_TIMING", "off", 1);
    exchange_timing_init(&off, compute);
    CHECK(!off.on);

    exchange_timing t;
    setenv("MOEDIT_EXCHANGE_TIMING", "on", 1);
    exchange_timing_init(&t, compute);
    CHECK(t.on);
    for (int ticket = 0; ticket < 2; ticket++) {
        exchange_timing_start(&t, ticket, side);
        CHECK(cudaLaunchHostFunc(side, sleep_ms, (void *)(intptr_t)(ticket == 0 ? 20 : 10)) == cudaSuccess);
        exchange_timing_end(&t, ticket, side);
        CHECK(cudaEventRecord(done[ticket], side) == cudaSuccess);
        if (ticket == 1) CHECK(cudaStreamSynchronize(side) == cudaSuccess);
        exchange_timing_wait(&t, ticket, compute);
        CHECK(cudaStreamWaitEvent(compute, done[ticket], 0) == cudaSuccess);
    }
    CHECK(cudaStreamSynchronize(compute) == cudaSuccess && cudaStreamSynchronize(side) == cudaSuccess);
    exchange_timing_report(&t, "test", 0);
    printf("  %lld exchanges ran %.2f ms, waited %.2f ms at %lld waits\n", (long long)t.exchanges, t.running_ms,
           t.waiting_ms, (long long)t.waits);
    CHECK(t.exchanges == 2 && t.waits == 2);
    CHECK_MSG(within(t.running_ms, 29.5, 40), "running %.2f ms, expected ~30", t.running_ms);
    CHECK_MSG(within(t.waiting_ms, 19.5, 27), "waited %.2f ms, expected ~20", t.waiting_ms);

    for (int i = 0; i < 2; i++) cudaEventDestroy(done[i]);
    cudaStreamDestroy(compute);
    cudaStreamDestroy(side);
    return test_finish("test_cuda_exchange_timing");
}
