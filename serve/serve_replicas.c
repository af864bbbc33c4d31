/* The replicas' images to rank 0; see serve_replicas.h. */
#include "serve/serve_replicas.h"

#include "core/error.h"
#include "serve/serve_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* header: [0] file count (-1: the sender could not read its files), then
 * [1 + 3i] bytes, [2 + 3i] seed and [3 + 3i] job of file i. */
#define HEADER_VALUES (1 + 3 * MOEDIT_MAX_OUTPUTS)

/* n bytes (buffer padded to whole int32s) from root to every rank of group. */
static int broadcast_bytes(process_group *group, void *data, int64_t n, int root)
{
    int64_t words = (n + 3) / 4;
    if (words == 0) return 0;
    tensor t = tensor_make(DTYPE_I32, DEVICE_CPU, 1, &words);
    t.data = data;
    return group->ops->broadcast(group, t, root);
}

/* On the sending rank: its files' sizes and seeds into the header, then
 * their bytes one after the other (padded to whole int32s). */
static uint8_t *pack_files(const moedit_generate_result *r, const int *jobs, int64_t *header, int64_t *total)
{
    uint8_t *file[MOEDIT_MAX_OUTPUTS] = {0}, *bytes = NULL;
    size_t size[MOEDIT_MAX_OUTPUTS] = {0};
    int read = 0;
    *total = 0;
    for (; read < r->count && !serve_file_read(r->files[read], &file[read], &size[read]); read++) {
        header[1 + 3 * read] = (int64_t)size[read];
        header[2 + 3 * read] = (int64_t)r->seeds[read];
        header[3 + 3 * read] = jobs[read];
        *total += (int64_t)size[read];
    }
    if (read == r->count) bytes = calloc((size_t)((*total + 3) / 4 * 4 + 4), 1);
    header[0] = bytes ? r->count : -1;
    for (int i = 0, at = 0; i < read; at += (int)size[i], i++) {
        if (bytes) memcpy(bytes + at, file[i], size[i]);
        free(file[i]);
    }
    if (!bytes) *total = 0;
    return bytes;
}

/* On rank 0: the received files into folder, each reported. */
static int unpack_files(const int64_t *header, const uint8_t *bytes, int replica, const char *folder, uint64_t id,
                        serve_image_fn on_image, void *user)
{
    int64_t at = 0;
    for (int i = 0; i < header[0]; i++) {
        int job = (int)header[3 + 3 * i];
        char path[4200];
        snprintf(path, sizeof path, "%s/replica-%llu-%d.png", folder, (unsigned long long)id, job);
        FILE *f = fopen(path, "wb");
        size_t size = (size_t)header[1 + 3 * i];
        int failed = !f || fwrite(bytes + at, 1, size, f) != size;
        if (f && fclose(f)) failed = 1;
        if (failed) return error_set("cannot write replica %d's image to %s: %s", replica, path, strerror(errno));
        at += header[1 + 3 * i];
        on_image(user, job, path, (uint64_t)header[2 + 3 * i]);
    }
    return 0;
}

int serve_replicas_gather(const world *w, process_group *group, int replicas, const moedit_generate_result *r,
                          const int *jobs, const char *folder, uint64_t id, serve_image_fn on_image, void *user)
{
    int64_t *header = malloc(HEADER_VALUES * sizeof *header);
    if (!header) return error_set("out of memory gathering the replicas' images");
    int status = 0, replica_size = w->size / replicas;
    for (int replica = 1; replica < replicas; replica++) {
        int root = replica * replica_size, sends = w->rank == root;
        int64_t total = 0;
        uint8_t *bytes = NULL;
        memset(header, 0, HEADER_VALUES * sizeof *header);
        if (sends) bytes = pack_files(r, jobs, header, &total);
        int shared = broadcast_bytes(group, header, HEADER_VALUES * (int64_t)sizeof *header, root);
        if (!shared && !sends)
            for (int i = 0; i < header[0]; i++) total += header[1 + 3 * i];
        if (!shared && !sends && header[0] > 0 && !(bytes = calloc((size_t)((total + 3) / 4 * 4 + 4), 1)))
            shared = error_set("out of memory for replica %d's images", replica); /* the others then wait in the
                                                                                   broadcast until its timeout */
        if (!shared && header[0] > 0) shared = broadcast_bytes(group, bytes, total, root);
        if (shared) status = -1;
        else if (header[0] < 0 && !status)
            status = error_set("replica %d (rank %d) could not read back the images it wrote", replica, root);
        else if (w->rank == 0 && !status)
            status = unpack_files(header, bytes, replica, folder, id, on_image, user);
        free(bytes);
    }
    free(header);
    return status;
}
