/* The process-wide world of the public API (moedit_init ... moedit_finalize). */
#include "moedit.h"

#include "backend/backend.h"
#include "parallel/world.h"
#include "pipelines/runtime.h"

#include "core/error.h"

#include <omp.h>

static world the_world = {0, 1, 0, 0};

int moedit_init(int *argc, char ***argv) { return world_init(&the_world, argc, argv); }

void moedit_finalize(void) { world_finalize(&the_world); }

void moedit_abort(int code) { world_abort(&the_world, code); }

int moedit_rank(void) { return the_world.rank; }

int moedit_world_size(void) { return the_world.size; }

const char *moedit_default_device(void) { return backend_default_device(); }

int moedit_agree(int status) { return world_agree(&the_world, status); }

const world *runtime_world(void) { return &the_world; }

uint64_t moedit_random_seed(void) { return the_world.random_seed; }

int moedit_set_threads(int threads)
{
    if (threads < 1 || threads > 4096) return error_set("--threads %d: must be 1..4096", threads);
    omp_set_num_threads(threads);
    return 0;
}

int moedit_threads(void) { return omp_get_max_threads(); }
