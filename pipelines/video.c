/* moedit_video (see moedit.h): generate_run with a video output writer (an
 * animated PNG or a directory of frames); the run denoises the frames as one
 * sequence. Its memory is checked by the run's estimate
 * (pipelines/run_memory.h) with the clip's frames. */
#include "io/apng.h"
#include "core/error.h"
#include "pipelines/generate.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int ends_with_slash(const char *path) { return *path && path[strlen(path) - 1] == '/'; }

/* "clip.png" (an animated PNG), or a frames directory: an existing one, or
 * one whose parent is writable (it is made when the frames are written, so
 * a run that fails leaves nothing behind). */
static int check_output(const char *output, int *frames_dir)
{
    /* stat the name without trailing slashes: "file/" must read as that file. */
    char name[4096];
    snprintf(name, sizeof name, "%s", output);
    for (size_t n = strlen(name); n > 1 && name[n - 1] == '/'; n--) name[n - 1] = '\0';
    struct stat st;
    int exists = stat(name, &st) == 0;
    *frames_dir = ends_with_slash(output) || (exists && S_ISDIR(st.st_mode));
    if (!*frames_dir) {
        const char *dot = strrchr(output, '.');
        if (!dot || strcmp(dot, ".png") != 0)
            return error_set("output %s: a clip is written as an animated .png, or as frames into a directory "
                             "(give DIR/)", output);
        return image_check_writable(output);
    }
    if (exists && !S_ISDIR(st.st_mode))
        return error_set("output %s: frames were asked for (the path ends in '/') but it is a file", output);
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", output);
    size_t n = strlen(parent);
    while (n > 1 && parent[n - 1] == '/') parent[--n] = '\0';
    char *slash = strrchr(parent, '/');
    if (slash) *(slash == parent ? slash + 1 : slash) = '\0';
    else snprintf(parent, sizeof parent, ".");
    const char *dir = exists ? output : parent;
    if (access(dir, W_OK) != 0)
        return error_set("output %s: directory %s is not writable: %s", output, dir, strerror(errno));
    return 0;
}

/* The video's settings, behind generate_output.user. */
typedef struct video_settings {
    int fps;
    int frames_dir; /* the output is a directory of frames */
    int overwrite;  /* an earlier run's frames there are removed (else refused) */
} video_settings;

/* Skips the digits at *s; 0 when there were none. */
static int skip_digits(const char **s)
{
    const char *start = *s;
    while (isdigit((unsigned char)**s)) (*s)++;
    return *s > start;
}

/* A name this writer gives frames: frame-NNNN.png or clipJ-frame-NNNN.png. */
static int is_frame_name(const char *name)
{
    if (!strncmp(name, "clip", 4)) {
        name += 4;
        if (!skip_digits(&name) || *name++ != '-') return 0;
    }
    if (strncmp(name, "frame-", 6)) return 0;
    name += 6;
    return skip_digits(&name) && !strcmp(name, ".png");
}

/* Counts (remove 0) or removes (remove 1) the frames of earlier runs in dir;
 * *first gets one's name for messages. */
static int old_frames(const char *dir, int remove, int *count, char *first, size_t size)
{
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return error_set("output %s: cannot list the frames directory: %s", dir, strerror(errno));
    int status = 0;
    for (struct dirent *e = readdir(d); e && status == 0; e = readdir(d)) {
        if (!is_frame_name(e->d_name)) continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue; /* not a frame this writer made */
        if (*count == 0 || strcmp(e->d_name, first) < 0) snprintf(first, size, "%s", e->d_name); /* the lowest name */
        (*count)++;
        if (remove && unlink(path) != 0)
            status = error_set("output %s: cannot remove the earlier run's %s: %s", dir, e->d_name, strerror(errno));
    }
    closedir(d);
    return status;
}

/* Frame f of job `job` of `total` in the frames directory `dir`:
 * dir/frame-0000.png..., or dir/clipJ-frame-0000.png for job J of several. */
static void frame_path(const char *dir, int job, int total, int64_t f, char *file, size_t size)
{
    const char *sep = ends_with_slash(dir) ? "" : "/";
    if (total > 1) snprintf(file, size, "%s%sclip%d-frame-%04lld.png", dir, sep, job, (long long)f);
    else snprintf(file, size, "%s%sframe-%04lld.png", dir, sep, (long long)f);
}

/* Every file of job `job`: its animated PNG, or (in a directory that
 * exists) its frames, none of which may be a directory. */
static int video_check_path(const generate_output *out, const char *path, int job, int total)
{
    const video_settings *v = out->user;
    if (!v->frames_dir) return image_check_writable(path);
    struct stat st;
    if (stat(path, &st) != 0) return 0; /* made at the end, empty: check_output saw its parent writable */
    char file[4400];
    int old = 0;
    if (job == 0 && !v->overwrite && old_frames(path, 0, &old, file, sizeof file)) return -1;
    if (old)
        return error_set("output %s holds %d frame%s of an earlier run (%s ...); give --overwrite to replace them, or "
                         "another directory",
                         path, old, old == 1 ? "" : "s", file);
    for (int64_t f = 0; f < out->frames; f++) {
        frame_path(path, job, total, f, file, sizeof file);
        if (stat(file, &st) == 0 && S_ISDIR(st.st_mode)) return error_set("output %s is a directory, not a file", file);
    }
    return 0;
}

/* With --overwrite, an earlier run's frames go before this run's are made
 * (only names this writer gives: other files stay). */
static int video_prepare(const generate_output *out, const char *path, int total)
{
    const video_settings *v = out->user;
    (void)total;
    struct stat st;
    if (!v->frames_dir || !v->overwrite || stat(path, &st) != 0) return 0;
    char first[300];
    int count;
    return old_frames(path, 1, &count, first, sizeof first);
}

/* An animated PNG at path, or the frames path/frame-0000.png...
 * (path/clipJ-frame-0000.png for job J of several). */
static int video_write(const generate_output *out, const char *path, int job, int total, const uint8_t *const *frames,
                       int64_t width, int64_t height, image_metadata *meta)
{
    const video_settings *v = out->user;
    char frame_count[32], fps[32];
    snprintf(frame_count, sizeof frame_count, "%lld", (long long)out->frames);
    snprintf(fps, sizeof fps, "%d", v->fps);
    image_metadata_add(meta, "frames", frame_count);
    image_metadata_add(meta, "fps", fps);
    if (!v->frames_dir) return apng_write(path, frames, (int)out->frames, width, height, v->fps, meta);
    char file[4400], first[4400];
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return error_set("output %s: cannot make the frames directory: %s", path, strerror(errno));
    for (int64_t f = 0; f < out->frames; f++) {
        frame_path(path, job, total, f, file, sizeof file);
        if (f == 0) snprintf(first, sizeof first, "%s", file);
        if (image_write(file, frames[f], width, height, meta) == 0) continue;
        if (f == 0) return -1;
        char message[1024];
        snprintf(message, sizeof message, "%s", error_message());
        return error_set("%s (written before it: %s to frame %lld)", message, first, (long long)f - 1);
    }
    return 0;
}

int moedit_video(const moedit_video_options *o, moedit_generate_result *r)
{
    memset(r, 0, sizeof *r);
    if (o->frames < 1 || o->frames > MOEDIT_MAX_FRAMES)
        return error_set("--num-frames %lld: must be 1..%d", (long long)o->frames, MOEDIT_MAX_FRAMES);
    if (o->fps < 0 || o->fps > 120) return error_set("--fps %d: must be 1..120", o->fps);
    video_settings settings = {o->fps ? o->fps : MOEDIT_DEFAULT_FPS, 0, !o->base.keep_existing};
    if (!o->base.output) return error_set("video needs --output clip.png or DIR/");
    if (check_output(o->base.output, &settings.frames_dir)) return -1;
    generate_output output = {o->frames, settings.frames_dir, video_write, &settings, video_check_path, video_prepare};
    generate_plan plan = {"video", NULL, &output, NULL};
    return generate_run(&o->base, &plan, r);
}
