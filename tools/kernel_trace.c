/* A kernel timeline for machines without Nsight Systems: a CUDA injection
 * library that records every kernel, memcpy and memset the GPU ran, with
 * the GPU's own start and end times, through CUPTI's activity API.
 *
 *   CUDA_INJECTION64_PATH=build/libmoedit_kernel_trace.so \
 *   MOEDIT_KERNEL_TRACE=trace.%p.tsv  moedit bench ...   (or python3 ...)
 *   tools/nsys_overlap.py trace.*.tsv
 *
 * Any CUDA program can run under it (moedit, a rank of mpirun, PyTorch), so
 * two programs' kernels can be compared on the same GPU. "%p" in the path
 * becomes the process id. Each line of the file is
 *   kind <TAB> start ns <TAB> end ns <TAB> stream <TAB> name
 * with kind "kernel", "memcpy" or "memset"; names are as the driver reports
 * them (C++ kernels mangled). Records are written when CUPTI hands back a
 * full buffer and at exit. Nothing in moedit links this file. */
#include <cupti.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { TRACE_BUFFER_BYTES = 8 << 20, TRACE_PATH_MAX = 4096 };

static FILE *trace_file;
static pthread_mutex_t trace_lock = PTHREAD_MUTEX_INITIALIZER;

static void CUPTIAPI trace_buffer_requested(uint8_t **buffer, size_t *size, size_t *max_records)
{
    /* CUPTI wants 8-byte aligned buffers. */
    *buffer = aligned_alloc(8, TRACE_BUFFER_BYTES);
    *size = *buffer ? TRACE_BUFFER_BYTES : 0;
    *max_records = 0;
}

static void trace_write(const CUpti_Activity *record)
{
    switch (record->kind) {
    case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
        const CUpti_ActivityKernel10 *k = (const CUpti_ActivityKernel10 *)record;
        fprintf(trace_file, "kernel\t%llu\t%llu\t%u\t%s\n", (unsigned long long)k->start,
                (unsigned long long)k->end, k->streamId, k->name ? k->name : "?");
        break;
    }
    case CUPTI_ACTIVITY_KIND_MEMCPY: {
        const CUpti_ActivityMemcpy6 *m = (const CUpti_ActivityMemcpy6 *)record;
        fprintf(trace_file, "memcpy\t%llu\t%llu\t%u\t%llu bytes\n", (unsigned long long)m->start,
                (unsigned long long)m->end, m->streamId, (unsigned long long)m->bytes);
        break;
    }
    case CUPTI_ACTIVITY_KIND_MEMSET: {
        const CUpti_ActivityMemset4 *m = (const CUpti_ActivityMemset4 *)record;
        fprintf(trace_file, "memset\t%llu\t%llu\t%u\t%llu bytes\n", (unsigned long long)m->start,
                (unsigned long long)m->end, m->streamId, (unsigned long long)m->bytes);
        break;
    }
    default:
        break;
    }
}

static void CUPTIAPI trace_buffer_completed(CUcontext context, uint32_t stream, uint8_t *buffer, size_t size,
                                            size_t valid)
{
    (void)context, (void)stream, (void)size;
    CUpti_Activity *record = NULL;
    pthread_mutex_lock(&trace_lock);
    while (cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) trace_write(record);
    size_t dropped = 0;
    if (cuptiActivityGetNumDroppedRecords(context, stream, &dropped) == CUPTI_SUCCESS && dropped)
        fprintf(stderr, "kernel_trace: CUPTI dropped %zu records\n", dropped);
    pthread_mutex_unlock(&trace_lock);
    free(buffer);
}

static void trace_finish(void)
{
    cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    pthread_mutex_lock(&trace_lock);
    if (trace_file) fclose(trace_file);
    trace_file = NULL;
    pthread_mutex_unlock(&trace_lock);
}

/* MOEDIT_KERNEL_TRACE with its first "%p" replaced by the process id. */
static int trace_path(char *path, size_t size)
{
    const char *pattern = getenv("MOEDIT_KERNEL_TRACE");
    if (!pattern || !*pattern) pattern = "kernel_trace.%p.tsv";
    const char *pid_at = strstr(pattern, "%p");
    int n = pid_at ? snprintf(path, size, "%.*s%ld%s", (int)(pid_at - pattern), pattern, (long)getpid(), pid_at + 2)
                   : snprintf(path, size, "%s", pattern);
    return n > 0 && (size_t)n < size;
}

/* Called by the CUDA driver at cuInit when CUDA_INJECTION64_PATH names this library. */
int InitializeInjection(void)
{
    char path[TRACE_PATH_MAX];
    if (!trace_path(path, sizeof path)) {
        fprintf(stderr, "kernel_trace: MOEDIT_KERNEL_TRACE is too long\n");
        return 0;
    }
    trace_file = fopen(path, "w");
    if (!trace_file) { /* the program runs on untraced */
        fprintf(stderr, "kernel_trace: %s: %s; no trace written\n", path, strerror(errno));
        return 0;
    }
    const CUpti_ActivityKind kinds[] = {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CUPTI_ACTIVITY_KIND_MEMCPY,
                                        CUPTI_ACTIVITY_KIND_MEMSET};
    int ok = cuptiActivityRegisterCallbacks(trace_buffer_requested, trace_buffer_completed) == CUPTI_SUCCESS;
    for (size_t i = 0; ok && i < sizeof kinds / sizeof kinds[0]; i++)
        ok = cuptiActivityEnable(kinds[i]) == CUPTI_SUCCESS;
    if (!ok) {
        fprintf(stderr, "kernel_trace: CUPTI refused the activity tracing; no trace written\n");
        fclose(trace_file);
        trace_file = NULL;
        unlink(path);
        return 0;
    }
    atexit(trace_finish);
    return 1;
}
