/* Table-driven option parsing; see cli.h. */
#include "examples/cli.h"

#include "core/error.h"
#include "moedit.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void print_help(const char *usage, const cli_option *options, int count)
{
    printf("%s\n\noptions:\n", usage);
    for (int i = 0; i < count; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", options[i].name, options[i].kind == OPT_FLAG ? "" : " ",
                 options[i].kind == OPT_FLAG ? "" : (options[i].metavar ? options[i].metavar : "VALUE"));
        printf("  %-34s %s\n", left, options[i].help);
    }
    printf("  %-34s %s\n", "--help", "show this help");
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
    case OPT_DEVICE: moedit_request_add(name, *(const char **)opt->target); return;
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

int cli_parse(int argc, char **argv, const char *usage, const cli_option *options, int count)
{
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
        if (!opt) return error_set("unknown option '%.*s' for '%s' (try --help)", (int)(length + 2), arg, argv[0]);
        if (opt->kind == OPT_FLAG) {
            if (equals) return error_set("option --%s takes no value", opt->name);
            *(int *)opt->target = 1;
            continue;
        }
        const char *value = equals ? equals + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!value) return error_set("option --%s needs a value", opt->name);
        if (set_value(opt, value)) return -1;
    }
    for (int j = 0; j < count; j++)
        if (options[j].kind == OPT_DEVICE && !strcmp(*(const char **)options[j].target, "auto"))
            *(const char **)options[j].target = moedit_default_device();
    for (int j = 0; j < count; j++) request_add_option(&options[j]);
    return 0;
}
