/* models/tiny-random with another scheduler for the tests that run a whole
 * pipeline with it: a directory of links to the model's parts and to a
 * scheduler directory, so that the committed model stays as it is. */
#ifndef MOEDIT_TESTS_TEST_MODEL_DIR_H
#define MOEDIT_TESTS_TEST_MODEL_DIR_H

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define TEST_TINY_MODEL MOEDIT_FIXTURES "/../../models/tiny-random"

static const char *const test_model_parts[] = {"model_index.json", "transformer", "vae", "text_encoder", "tokenizer",
                                               "scheduler"};

/* Creates dir: tiny-random's parts, its scheduler/ linked to scheduler_dir. 0 or -1. */
static inline int test_model_with_scheduler(const char *dir, const char *scheduler_dir)
{
    char from[1024], to[1024];
    if (mkdir(dir, 0755)) return -1;
    for (size_t i = 0; i < sizeof test_model_parts / sizeof test_model_parts[0]; i++) {
        int scheduler = i + 1 == sizeof test_model_parts / sizeof test_model_parts[0];
        snprintf(from, sizeof from, "%s/%s", TEST_TINY_MODEL, test_model_parts[i]);
        snprintf(to, sizeof to, "%s/%s", dir, test_model_parts[i]);
        if (symlink(scheduler ? scheduler_dir : from, to)) return -1;
    }
    return 0;
}

/* Removes what test_model_with_scheduler made. */
static inline void test_model_remove(const char *dir)
{
    char path[1024];
    for (size_t i = 0; i < sizeof test_model_parts / sizeof test_model_parts[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, test_model_parts[i]);
        unlink(path);
    }
    rmdir(dir);
}

#endif
