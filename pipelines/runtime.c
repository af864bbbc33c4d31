/* The process-wide world of the public API (moedit_init ... moedit_finalize). */
#include "moedit.h"

#include "backend/backend.h"
#include "parallel/world.h"
#include "parallel/world_request.h"
#include "pipelines/model_digest.h"
#include "pipelines/runtime.h"

#include "core/error.h"

#include <omp.h>
#include <stdio.h>

static world the_world = {0, 1, 0, 0, NULL, 1};

int moedit_init(int *argc, char ***argv) { return world_init(&the_world, argc, argv); }

void moedit_finalize(void) { world_finalize(&the_world); }

void moedit_abort(int code) { world_abort(&the_world, code); }

int moedit_rank(void) { return the_world.rank; }

int moedit_world_size(void) { return the_world.size; }

const char *moedit_default_device(void) { return backend_default_device(); }

int moedit_agree(int status) { return world_agree(&the_world, status); }

void moedit_request_add(const char *name, const char *value)
{
    if (the_world.size > 1) world_request_add(name, value);
}

void moedit_request_add_model(const char *model_dir)
{
    if (the_world.size == 1 || !model_dir) return;
    uint64_t digest;
    int files;
    model_digest(model_dir, &digest, &files);
    char shown[64];
    snprintf(shown, sizeof shown, "%016llx (%d files)", (unsigned long long)digest, files);
    world_request_add_digest("the digest of the model folder", digest, shown);
}

int moedit_agree_request(int status) { return world_agree_request(&the_world, status); }

int moedit_agree_end(int status) { return world_agree_end(&the_world, status); }

const world *runtime_world(void) { return &the_world; }

uint64_t moedit_random_seed(void) { return the_world.random_seed; }

int moedit_set_threads(int threads)
{
    if (threads < 1 || threads > 4096) return error_set("--threads %d: must be 1..4096", threads);
    omp_set_num_threads(threads);
    return 0;
}

int moedit_threads(void) { return omp_get_max_threads(); }
