/* Variants of a committed text-encoder fixture directory for the loaders'
 * error tests: a temporary directory holding the fixture's config.json with
 * some keys replaced or deleted, and its model.safetensors (as a link) or a
 * copy that lacks one tensor. Uses test_util.h's CHECK. */
#ifndef MOEDIT_TESTS_TEST_ENCODER_VARIANT_H
#define MOEDIT_TESTS_TEST_ENCODER_VARIANT_H

#include "core/config.h"
#include "core/error.h"
#include "core/text_file.h"
#include "io/safetensors.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct config_edit {
    const char *key;
    const char *json; /* NULL: delete the key */
} config_edit;

/* dir/config.json = source/config.json with the edits applied. */
static inline void variant_write_config(const char *source, const char *dir, const config_edit *edits, int count)
{
    char path[1024], *text = NULL;
    snprintf(path, sizeof path, "%s/config.json", source);
    CHECK_MSG(text_file_read(path, CONFIG_MAX_BYTES, "fixture", &text) == 0, "%s", error_message());
    cJSON *root = cJSON_Parse(text);
    free(text);
    for (int i = 0; i < count; i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(root, edits[i].key);
        if (edits[i].json) cJSON_AddItemToObject(root, edits[i].key, cJSON_Parse(edits[i].json));
    }
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *printed = cJSON_Print(root);
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL);
    if (fp) {
        fputs(printed, fp);
        fclose(fp);
    }
    free(printed);
    cJSON_Delete(root);
}

/* dir/model.safetensors: a link to source's or, with a prefix (before every
 * tensor's name) or a tensor to skip (left out; NULL: none), an F32 copy. */
static inline void variant_write_weights(const char *source, const char *dir, const char *prefix, const char *skip)
{
    char from[1024], to[1024];
    snprintf(from, sizeof from, "%s/model.safetensors", source);
    snprintf(to, sizeof to, "%s/model.safetensors", dir);
    unlink(to);
    if (!prefix && !skip) {
        char absolute[4096];
        CHECK(realpath(from, absolute) != NULL && symlink(absolute, to) == 0);
        return;
    }
    safetensors *st = NULL;
    CHECK(safetensors_open(&st, from) == 0);
    if (!st) return;
    int n = safetensors_count(st), kept = 0;
    char **names = calloc((size_t)n, sizeof *names);
    tensor *tensors = calloc((size_t)n, sizeof *tensors);
    for (int i = 0; i < n; i++) {
        const safetensors_entry *e = safetensors_entry_at(st, i);
        if (skip && strcmp(e->name, skip) == 0) continue;
        size_t size = strlen(prefix ? prefix : "") + strlen(e->name) + 1;
        names[kept] = malloc(size);
        snprintf(names[kept], size, "%s%s", prefix ? prefix : "", e->name);
        tensor t = tensor_make(DTYPE_F32, DEVICE_CPU, e->ndim, e->shape);
        t.data = malloc(tensor_nbytes(&t));
        CHECK(safetensors_read_f32(st, e->name, e->ndim, e->shape, t.data) == 0);
        tensors[kept++] = t;
    }
    if (skip) CHECK_MSG(kept == n - 1, "%s is not in %s", skip, from);
    CHECK_MSG(safetensors_write(to, (const char **)names, tensors, kept) == 0, "%s", error_message());
    for (int i = 0; i < kept; i++) free(names[i]), free(tensors[i].data);
    free(names);
    free(tensors);
    safetensors_close(st);
}

/* A fresh directory made from the template "/tmp/moedit_..._XXXXXX" in dir. */
static inline void variant_make(char *dir, const char *source, const config_edit *edits, int count, const char *skip)
{
    CHECK(mkdtemp(dir) != NULL);
    variant_write_config(source, dir, edits, count);
    variant_write_weights(source, dir, NULL, skip);
}

static inline void variant_remove(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
}

#endif
