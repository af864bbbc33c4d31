/* Table-driven option parsing; see cli.h. */
#include "examples/cli.h"

#include "core/error.h"
#include "moedit.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --threads, which every command takes (cli.h). */
#define THREADS_NOT_GIVEN INT64_MIN
static int64_t threads_given = THREADS_NOT_GIVEN;
static const cli_option threads_option = {"threads", OPT_INT, &threads_given,
                                          "OpenMP threads of the CPU backend per rank (default: the machine's CPUs "
                                          "shared among its ranks, or OMP_NUM_THREADS)",
                                          "N"};

void cli_passive_threads(char **argv)
{
    if (getenv("OMP_WAIT_POLICY")) return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
    /* The program's own file by its name, so that ps, top and pgrep still
     * show "moedit" (exec through /proc/self/exe would name it "exe"). */
    char self[4096];
    ssize_t length = readlink("/proc/self/exe", self, sizeof self - 1);
    if (length > 0) {
        self[length] = '\0';
        execv(self, argv);
    }
    execv("/proc/self/exe", argv); /* returns only on failure: then run as we are */
}

cli_option *cli_find_option(cli_option *options, int count, const char *name)
{
    for (int i = 0; i < count; i++)
        if (!strcmp(options[i].name, name)) return &options[i];
    return NULL;
}

/* True when the typed name (after "--") equals the option, reading '_' as '-'. */
static int name_matches(const char *typed, size_t length, const char *name)
{
    if (strlen(name) != length) return 0;
    for (size_t i = 0; i < length; i++) {
        char c = typed[i] == '_' ? '-' : typed[i];
        if (c != name[i]) return 0;
    }
    return 1;
}

static void print_option(const cli_option *o)
{
    char left[64];
    const char *metavar = o->metavar ? o->metavar : "VALUE";
    if (o->kind == OPT_FLAG) snprintf(left, sizeof left, "--%s", o->name);
    else if (o->kind == OPT_OPTIONAL_STRING) snprintf(left, sizeof left, "--%s[=%s]", o->name, metavar);
    else snprintf(left, sizeof left, "--%s %s", o->name, metavar);
    printf("  %-34s %s\n", left, o->help);
}

static void print_help(const char *usage, const cli_option *options, int count)
{
    printf("%s\n\noptions:\n", usage);
    for (int i = 0; i < count; i++)
        if (options[i].help) print_option(&options[i]);
    print_option(&threads_option);
    printf("  %-34s %s\n", "--help", "show this help");
}

/* Edit distance (insertions, deletions, substitutions, swaps of neighbours)
 * between a[0..n) and b, reading '_' in a as '-'. */
static int edit_distance(const char *a, size_t n, const char *b)
{
    size_t m = strlen(b);
    if (n > 64 || m > 64) return 1000;
    int d[65][65];
    for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            char c = a[i - 1] == '_' ? '-' : a[i - 1];
            int best = d[i - 1][j - 1] + (c != b[j - 1]);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            char prev = i > 1 ? (a[i - 2] == '_' ? '-' : a[i - 2]) : 0;
            if (i > 1 && j > 1 && c == b[j - 2] && prev == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m];
}

/* True when typed[0..n) (with '_' as '-') is a part of name. */
static int is_part_of(const char *typed, size_t n, const char *name)
{
    size_t m = strlen(name);
    for (size_t at = 0; at + n <= m; at++) {
        size_t k = 0;
        while (k < n && (typed[k] == '_' ? '-' : typed[k]) == name[at + k]) k++;
        if (k == n) return 1;
    }
    return 0;
}

/* The listed option closest to a typed name, or NULL when none is close:
 * within a third of the name's length in edits (at least 1, at most 3), or
 * else the only name the typed one is a part of (4 characters or more). */
static const char *closest_option(const char *typed, size_t n, const cli_option *options, int count)
{
    const char *best = NULL, *containing = NULL;
    int best_distance = 1000, containing_count = 0;
    for (int i = 0; i <= count; i++) {
        const cli_option *o = i < count ? &options[i] : &threads_option;
        if (!o->help) continue;
        int distance = edit_distance(typed, n, o->name);
        if (distance < best_distance) best_distance = distance, best = o->name;
        if (n >= 4 && is_part_of(typed, n, o->name)) containing_count++, containing = o->name;
    }
    int limit = (int)n / 3 < 1 ? 1 : (int)n / 3 > 3 ? 3 : (int)n / 3;
    if (best && best_distance <= limit) return best;
    return containing_count == 1 ? containing : NULL;
}

static int set_value(const cli_option *opt, const char *value)
{
    char *end = NULL;
    errno = 0;
    switch (opt->kind) {
    case OPT_DEVICE:
        if (strcmp(value, "cpu") && strcmp(value, "cuda") && strcmp(value, "auto"))
            return error_set("option --%s: '%s' is not cpu, cuda or auto", opt->name, value);
        *(const char **)opt->target = value;
        return 0;
    case OPT_STRING:
    case OPT_OPTIONAL_STRING:
        *(const char **)opt->target = value;
        return 0;
    case OPT_INT: {
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end)
            return error_set("option --%s: '%s' is not an integer", opt->name, value);
        *(int64_t *)opt->target = v;
        return 0;
    }
    case OPT_FLOAT:
    case OPT_FLOAT_LIST: {
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v))
            return error_set("option --%s: '%s' is not a number", opt->name, value);
        if (opt->kind == OPT_FLOAT) {
            *(double *)opt->target = v;
            return 0;
        }
        cli_float_list *list = opt->target;
        if (list->count == CLI_MAX_LIST) return error_set("option --%s: more than %d given", opt->name, CLI_MAX_LIST);
        list->values[list->count++] = v;
        return 0;
    }
    case OPT_STRING_LIST: {
        cli_string_list *list = opt->target;
        if (list->count == CLI_MAX_LIST) return error_set("option --%s: more than %d given", opt->name, CLI_MAX_LIST);
        list->values[list->count++] = value;
        return 0;
    }
    case OPT_FLAG:
        break;
    }
    return error_set("option --%s takes no value", opt->name);
}

/* An option's parsed value as text, for the ranks' comparison of their requests. */
static void request_add_option(const cli_option *opt)
{
    char name[64], value[1024];
    snprintf(name, sizeof name, "--%s", opt->name);
    switch (opt->kind) {
    case OPT_FLAG: snprintf(value, sizeof value, "%s", *(int *)opt->target ? "on" : "off"); break;
    case OPT_INT: snprintf(value, sizeof value, "%lld", (long long)*(int64_t *)opt->target); break;
    case OPT_FLOAT: snprintf(value, sizeof value, "%.17g", *(double *)opt->target); break;
    case OPT_STRING:
    case OPT_DEVICE:
    case OPT_OPTIONAL_STRING: moedit_request_add(name, *(const char **)opt->target); return;
    case OPT_STRING_LIST:
    case OPT_FLOAT_LIST: {
        size_t used = 0;
        value[0] = '\0';
        const cli_string_list *strings = opt->target;
        const cli_float_list *floats = opt->target;
        int n = opt->kind == OPT_STRING_LIST ? strings->count : floats->count;
        for (int i = 0; i < n && used < sizeof value; i++) {
            if (opt->kind == OPT_STRING_LIST)
                used += (size_t)snprintf(value + used, sizeof value - used, "%s%s", i ? "' '" : "", strings->values[i]);
            else
                used += (size_t)snprintf(value + used, sizeof value - used, "%s%.17g", i ? " " : "", floats->values[i]);
        }
        break;
    }
    }
    moedit_request_add(name, value);
}

/* Whether ARG is spelled as one of the options ("--seed", "--seed=3", "--help"): given as the value of the
 * option before it, it is a value forgotten ("--prompt --seed 3"), not a text that starts with dashes. */
static int names_an_option(const char *arg, const cli_option *options, int count)
{
    if (strncmp(arg, "--", 2) != 0) return 0;
    const char *name = arg + 2, *equals = strchr(name, '=');
    size_t length = equals ? (size_t)(equals - name) : strlen(name);
    if (name_matches(name, length, "help") || name_matches(name, length, threads_option.name)) return 1;
    for (int j = 0; j < count; j++)
        if (name_matches(name, length, options[j].name)) return 1;
    return 0;
}

int cli_parse(int argc, char **argv, const char *usage, const cli_option *options, int count)
{
    threads_given = THREADS_NOT_GIVEN;
    moedit_request_add("the command", argv[0]);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            if (moedit_rank() == 0) print_help(usage, options, count); /* once under mpirun */
            moedit_request_add("--help", "on");
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0) return error_set("unexpected argument '%s' (options start with --)", arg);
        const char *name = arg + 2, *equals = strchr(name, '=');
        size_t length = equals ? (size_t)(equals - name) : strlen(name);
        const cli_option *opt = NULL;
        for (int j = 0; j < count && !opt; j++)
            if (name_matches(name, length, options[j].name)) opt = &options[j];
        if (!opt && name_matches(name, length, threads_option.name)) opt = &threads_option;
        if (!opt) {
            const char *near = closest_option(name, length, options, count);
            if (near) return error_set("unknown option '%.*s' for '%s'; did you mean --%s?", (int)(length + 2), arg, argv[0], near);
            return error_set("unknown option '%.*s' for '%s' (try --help)", (int)(length + 2), arg, argv[0]);
        }
        if (opt->kind == OPT_OPTIONAL_STRING && !equals && (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2))) {
            *(const char **)opt->target = "-";
            continue;
        }
        if (opt->kind == OPT_FLAG) {
            if (equals) return error_set("option --%s takes no value", opt->name);
            *(int *)opt->target = 1;
            continue;
        }
        const char *value = equals ? equals + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!value) return error_set("option --%s needs a value", opt->name);
        if (!equals && names_an_option(value, options, count))
            return error_set("option --%s needs a value, and '%s' is an option (write --%s=%s for a value that is "
                             "the same text)",
                             opt->name, value, opt->name, value);
        if (set_value(opt, value)) return -1;
    }
    for (int j = 0; j < count; j++)
        if (options[j].kind == OPT_DEVICE && !strcmp(*(const char **)options[j].target, "auto"))
            *(const char **)options[j].target = moedit_default_device();
    if (threads_given != THREADS_NOT_GIVEN && moedit_set_threads(threads_given < 1 || threads_given > 4096 ? -1 : (int)threads_given))
        return error_set("--threads %lld: must be 1..4096", (long long)threads_given);
    /* --threads is left out: it changes no bit of the result (any rank may have its own). */
    for (int j = 0; j < count; j++) request_add_option(&options[j]);
    return 0;
}

int cli_cache_options(moedit_cache_options *cache, cli_option *options)
{
    moedit_cache_options defaults = MOEDIT_CACHE_DEFAULTS;
    *cache = defaults;
    cli_option table[] = {
        {"cache", OPT_STRING, &cache->mode,
         "step caching: none (default), block (reuse the middle blocks' residual on steps that barely change) or "
         "taylor (extrapolate it); docs/step-cache.md",
         "MODE"},
        {"cache-first-blocks", OPT_INT, &cache->first_blocks,
         "blocks always computed first; their residual's change decides (default 1)", "F"},
        {"cache-last-blocks", OPT_INT, &cache->last_blocks, "blocks always computed last (default 1)", "B"},
        {"cache-threshold", OPT_FLOAT, &cache->threshold,
         "cache a step when the first blocks' residual changed by at most this (relative L2) since the last "
         "computed step; 0: never (default 0.2)",
         "T"},
        {"cache-warmup", OPT_INT, &cache->warmup_steps, "first steps always computed (default 3)", "N"},
        {"cache-max-consecutive", OPT_INT, &cache->max_consecutive, "most cached steps in a row (default 3)", "N"},
        {"cache-taylor-order", OPT_INT, &cache->taylor_order, "taylor: order of the extrapolation, 1..4 (default 1)",
         "K"},
        {"cache-schedule-capture", OPT_STRING, &cache->schedule_capture,
         "write which steps the first image computed (safetensors)", "FILE"},
        {"cache-schedule-replay", OPT_STRING, &cache->schedule_replay,
         "compute exactly the steps of a --cache-schedule-capture file (layouts compared under one schedule)", "FILE"},
    };
    _Static_assert(sizeof table / sizeof table[0] == CLI_CACHE_OPTIONS, "CLI_CACHE_OPTIONS does not count them");
    memcpy(options, table, sizeof table);
    return CLI_CACHE_OPTIONS;
}

void cli_cache_report(FILE *out, const moedit_generate_result *r)
{
    if (!r->cache_computed) return;
    fprintf(out, ",\"cache\":{\"computed_steps\":[");
    int first = 1;
    for (int i = 0; i < r->cache_steps; i++)
        if (r->cache_computed[i] == 1) {
            fprintf(out, "%s%d", first ? "" : ",", i);
            first = 0;
        }
    fprintf(out, "],\"cached_steps\":[");
    first = 1;
    for (int i = 0; i < r->cache_steps; i++)
        if (r->cache_computed[i] == 0) {
            fprintf(out, "%s%d", first ? "" : ",", i);
            first = 0;
        }
    fprintf(out, "],\"computed\":%lld,\"cached\":%lld,\"transformer_flops_saved\":%.4f,\"residual_bytes\":%lld}",
            (long long)r->cache_computed_steps, (long long)r->cache_cached_steps, r->cache_flops_saved,
            (long long)r->cache_bytes);
}
