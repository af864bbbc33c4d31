/* moedit bench-vae: timing of the VAE decoder of a model (or a vae/ folder). */
#include "examples/cli.h"

#include "core/error.h"
#include "bench/bench.h"

#include <stdio.h>
#include <unistd.h>

/* A model folder's vae/, or DIR itself when it is a VAE folder. */
static const char *vae_folder(const char *dir, char *path, size_t size)
{
    snprintf(path, size, "%s/vae/config.json", dir);
    if (access(path, F_OK) != 0) return dir;
    snprintf(path, size, "%s/vae", dir);
    return path;
}

int cli_bench_vae(int argc, char **argv)
{
    moedit_vae_bench_options o = {.device = "auto", .height = 1024, .width = 1024, .warmup = 1, .iterations = 5};
    int json = 0;
    const char *model = NULL;
    char vae[4200];
    cli_option options[] = {
        {"model", OPT_STRING, &model, "a model folder (its vae/ is timed) or a VAE folder (config.json and weights)",
         "DIR"},
        {"vae", OPT_STRING, &model, NULL, "DIR"}, /* the spelling of 2026-11 */
        CLI_DEVICE_OPTION(&o.device),
        {"height", OPT_INT, &o.height, "image height in pixels (default 1024)", "H"},
        {"width", OPT_INT, &o.width, "image width in pixels (default 1024)", "W"},
        {"warmup", OPT_INT, &o.warmup, "untimed decodes first (default 1)", "N"},
        {"iterations", OPT_INT, &o.iterations, "timed decodes (default 5)", "N"},
        {"json", OPT_FLAG, &json, "print one JSON line", NULL},
    };
    int parsed = cli_parse(argc, argv, "usage: [mpirun -np N] moedit bench-vae --model DIR [--height H --width W] [--device cpu|cuda|auto]\n"
                           "Under mpirun, each decode is split in row bands over the N ranks.",
                           options, (int)(sizeof options / sizeof options[0]));
    if (parsed != 0) return parsed < 0 ? -1 : 0;
    if (!model) return error_set("bench-vae needs --model DIR (a model folder or its vae/)");
    o.vae_dir = vae_folder(model, vae, sizeof vae);
    moedit_vae_bench_result r;
    if (moedit_bench_vae(&o, &r)) return -1;
    if (moedit_rank() != 0) return 0;
    if (json)
        printf("{\"device\":\"%s\",\"ranks\":%d,\"height\":%lld,\"width\":%lld,\"decode_ms_median\":%.3f,"
               "\"decode_ms_p10\":%.3f,\"decode_ms_p90\":%.3f,\"scratch_peak_mib\":%.1f}\n",
               o.device, r.ranks, (long long)o.height, (long long)o.width, r.median_ms, r.p10_ms, r.p90_ms,
               r.scratch_peak_mib);
    else
        printf("VAE decode %lldx%lld on %s, %d rank(s): median %.2f ms (p10 %.2f, p90 %.2f) over %lld runs; scratch "
               "peak %.1f MiB per rank\n",
               (long long)o.width, (long long)o.height, o.device, r.ranks, r.median_ms, r.p10_ms, r.p90_ms,
               (long long)o.iterations, r.scratch_peak_mib);
    return 0;
}
