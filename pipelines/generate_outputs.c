/* The files a generate run writes: numbered names for several images, the
 * next free name with keep_existing, the check of every path before any
 * model loads, and the list of written files in an error. */
#include "pipelines/generate_state.h"

#include "core/error.h"
#include "io/image_io.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* "out.png" for one image; "out-3.png" for the fourth of several. */
static void output_path(const char *output, int index, int total, char *path, size_t size)
{
    if (total == 1) {
        snprintf(path, size, "%s", output);
        return;
    }
    const char *dot = strrchr(output, '.'), *slash = strrchr(output, '/');
    if (!dot || (slash && dot < slash)) dot = output + strlen(output);
    snprintf(path, size, "%.*s-%d%s", (int)(dot - output), output, index, dot);
}

/* The file job `job` of `total` writes (a writer that names its files per
 * job, like a video's frames directory, gets the output as given). */
void generate_job_path(const generate_state *g, int job, int total, char *path, size_t size)
{
    if (g->output && g->output->one_path) snprintf(path, size, "%s", g->output_name);
    else output_path(g->output_name, job, total, path, size);
}

/* output with "-n" before its extension ("out.png" -> "out-2.png"); n 0: as given. */
static void suffixed_name(const char *output, int n, char *name, size_t size)
{
    if (n == 0) {
        snprintf(name, size, "%s", output);
        return;
    }
    const char *dot = strrchr(output, '.'), *slash = strrchr(output, '/');
    if (!dot || (slash && dot < slash) || dot == output || (slash && dot == slash + 1)) dot = output + strlen(output);
    snprintf(name, size, "%.*s-%d%s", (int)(dot - output), output, n, dot);
}

void generate_use_name_suffix(generate_state *g, int n)
{
    g->name_suffix = n;
    suffixed_name(g->o->output, n, g->free_name, sizeof g->free_name);
    g->output_name = g->free_name;
}

/* True when a file (not a directory: that stays an error of its own) holds one of the run's names. */
static int any_output_exists(const generate_state *g, int total)
{
    char path[4200];
    struct stat st;
    for (int job = 0; job < total; job++) {
        generate_job_path(g, job, total, path, sizeof path);
        if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode)) return 1;
    }
    return 0;
}

/* With keep_existing: the first of output, output-1, output-2, ... whose
 * files (every numbered one of a batch) are all free. A frames directory is
 * the video writer's to check (it holds other runs' frames or not). */
#define MAX_NAME_SUFFIX 100000
int generate_choose_output_name(generate_state *g, int total)
{
    generate_use_name_suffix(g, 0);
    if (!g->o->keep_existing || (g->output && g->output->one_path)) return 0;
    for (int n = 0; n < MAX_NAME_SUFFIX; n++) {
        generate_use_name_suffix(g, n);
        if (!any_output_exists(g, total)) return 0;
    }
    return error_set("output %s: it and %d numbered names after it exist already; give --overwrite or another name",
                     g->o->output, MAX_NAME_SUFFIX - 1);
}

/* Every file the run will write, checked before any model loads (the base
 * name of numbered outputs is never written, so it is not what counts). */
int generate_check_output_paths(const generate_state *g, int total)
{
    if (!g->output && !image_format_supported(g->output_name)) return image_check_writable(g->output_name);
    char path[4200];
    for (int job = 0; job < total; job++) {
        generate_job_path(g, job, total, path, sizeof path);
        if (!g->output ? image_check_writable(path)
                       : g->output->check_path && g->output->check_path(g->output, path, job, total))
            return -1;
    }
    return 0;
}

/* After a failure: the message names the files the run had written. */
void generate_note_written(const moedit_generate_result *r)
{
    if (r->count == 0) return;
    int shared = error_is_shared();
    char message[1024], list[700] = "";
    snprintf(message, sizeof message, "%s", error_message());
    size_t used = 0;
    for (int i = 0; i < r->count && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", r->files[i]);
    error_set("%s (written before it: %s)", message, list);
    if (shared) error_mark_shared();
}
