/* moedit bench-comm: timing of the collectives over the launcher's ranks. */
#include "examples/cli.h"

#include "core/error.h"
#include "bench/bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "1M,64M,512K" -> bytes (K, M, G: powers of 1024). */
static int parse_sizes(const char *list, moedit_comm_bench_options *o)
{
    const char *at = list;
    o->size_count = 0;
    while (*at) {
        char *end;
        double value = strtod(at, &end);
        int64_t unit = *end == 'K' ? 1 << 10 : *end == 'M' ? 1 << 20 : *end == 'G' ? 1 << 30 : 1;
        if (unit > 1) end++;
        if (end == at || value <= 0 || (*end && *end != ','))
            return error_set("--sizes: expected sizes like 1M,64M (bytes, K/M/G suffixes), not '%s'", list);
        if (o->size_count == MOEDIT_COMM_MAX_SIZES) return error_set("--sizes: at most %d sizes", MOEDIT_COMM_MAX_SIZES);
        o->sizes[o->size_count++] = (int64_t)(value * (double)unit);
        at = *end ? end + 1 : end;
        if (*end && !*at) return error_set("--sizes: '%s' ends with a comma", list);
    }
    return 0;
}

int cli_bench_comm(int argc, char **argv)
{
    moedit_comm_bench_options o = {.device = "auto", .warmup = 2, .iterations = 10};
    const char *sizes = "1M,16M,64M";
    int json = 0;
    cli_option options[] = {
        CLI_DEVICE_OPTION(&o.device),
        {"sizes", OPT_STRING, &sizes, "bytes each rank contributes, e.g. 1M,16M,64M (the default)", "LIST"},
        {"warmup", OPT_INT, &o.warmup, "untimed runs of each first (default 2)", "N"},
        {"iterations", OPT_INT, &o.iterations, "timed runs of each (default 10)", "N"},
        {"json", OPT_FLAG, &json, "one JSON line per collective and size", NULL},
    };
    int parsed = cli_parse(argc, argv,
                           "usage: mpirun -np N moedit bench-comm [--device cpu|cuda|auto] [--sizes 1M,16M,64M]\n"
                           "Times all-to-all, all-gather, all-reduce and send/receive over the N ranks, through the\n"
                           "process groups the parallel modes use (NCCL on GPUs, MPI on CPUs).",
                           options, (int)(sizeof options / sizeof options[0]));
    if (parsed != 0) return parsed < 0 ? -1 : 0;
    if (parse_sizes(sizes, &o)) return -1;
    moedit_comm_bench_result r;
    if (moedit_bench_comm(&o, &r)) return -1;
    if (moedit_rank() != 0) return 0;
    if (!json)
        printf("collectives over %d rank(s) (%s), bytes per rank, median of %lld runs, slowest rank:\n"
               "%-10s %12s %24s %11s %11s\n",
               r.ranks, r.transport, (long long)o.iterations, "op", "bytes", "ms (p10-p90)", "algbw GB/s", "busbw GB/s");
    for (int i = 0; i < r.count; i++) {
        const moedit_comm_bench_row *row = &r.rows[i];
        if (json)
            printf("{\"op\":\"%s\",\"ranks\":%d,\"transport\":\"%s\",\"device\":\"%s\",\"bytes\":%lld,\"ms_median\":%.4f,"
                   "\"ms_p10\":%.4f,\"ms_p90\":%.4f,\"algbw_gbs\":%.3f,\"busbw_gbs\":%.3f}\n",
                   row->op, r.ranks, r.transport, o.device, (long long)row->bytes, row->median_ms, row->p10_ms,
                   row->p90_ms, row->algbw_gbs, row->busbw_gbs);
        else {
            char spread[40];
            snprintf(spread, sizeof spread, "%.3f (%.3f-%.3f)", row->median_ms, row->p10_ms, row->p90_ms);
            printf("%-10s %12lld %24s %11.2f %11.2f\n", row->op, (long long)row->bytes, spread, row->algbw_gbs,
                   row->busbw_gbs);
        }
    }
    return 0;
}
