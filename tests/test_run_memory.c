/* The run's memory estimate (pipelines/run_memory.h) and named arenas:
 * - the VAE part of the tiny model's estimate is its measured arena peak,
 *   3 x 16 channels x 4 bytes = 192 bytes a pixel (moedit bench-vae: 192 MiB
 *   at 1024x1024), halved by two VAE ranks; the transformer part shrinks with
 *   sequence parallelism; a clip counts every frame's tokens; a GPU run
 *   counts host memory only;
 * - under a soft address-space limit (setrlimit, restored after) a
 *   4096x4096 run is refused with the estimate and the limit, and a 64x64
 *   run passes;
 * - an arena that cannot grow names its stage, not "scratch arena". */
#include "backend/arena.h"
#include "core/error.h"
#include "pipelines/run_memory.h"
#include "test_util.h"

#include <string.h>
#include <sys/resource.h>

#define TINY MOEDIT_FIXTURES "/../../models/tiny-random"

static moedit_generate_options options(int64_t side)
{
    moedit_generate_options o = {0};
    o.height = o.width = side;
    o.device = "cpu";
    return o;
}

int main(void)
{
    dit_config dit;
    vae_config vae;
    CHECK(dit_config_load(&dit, TINY "/transformer/config.json") == 0);
    CHECK(vae_config_load(&vae, TINY "/vae/config.json") == 0);

    moedit_generate_options o = options(1024);
    run_memory m, split, clip;
    run_memory_estimate(&dit, &vae, &o, 1, 0, 0, &m);
    CHECK(m.tokens == 64 * 64);
    CHECK_MSG(m.vae == 192.0 * 1024 * 1024, "VAE %.0f bytes", m.vae);
    CHECK(m.transformer > 0 && m.host > 0 && m.total > m.vae + m.transformer + m.host);
    o.parallel.ulysses = 2;
    o.parallel.vae_patch_parallel = 2;
    run_memory_estimate(&dit, &vae, &o, 1, 0, 0, &split);
    CHECK(split.transformer == m.transformer / 2 && split.vae == m.vae / 2 && split.host == m.host);
    o = options(1024);
    run_memory_estimate(&dit, &vae, &o, 4, 0, 0, &clip);
    CHECK(clip.tokens == 4 * m.tokens && clip.transformer == 4 * m.transformer && clip.vae == m.vae);
    run_memory_estimate(&dit, &vae, &o, 1, 1, 1, &clip); /* an in-context edit: context tokens, the encoder */
    CHECK(clip.tokens == 2 * m.tokens && clip.vae == 2 * m.vae);
    o.device = "cuda";
    run_memory_estimate(&dit, &vae, &o, 1, 0, 0, &clip);
    CHECK(clip.transformer == 0 && clip.vae == 0 && clip.total == clip.host);

    /* Under an address-space limit of 3 GB (`ulimit -v 3000000`). */
    struct rlimit before, limited;
    CHECK(getrlimit(RLIMIT_AS, &before) == 0);
    limited = before;
    limited.rlim_cur = (rlim_t)3000000 * 1024;
    if (before.rlim_max != RLIM_INFINITY && before.rlim_max < limited.rlim_cur) limited.rlim_cur = before.rlim_max;
    CHECK(setrlimit(RLIMIT_AS, &limited) == 0);
    o = options(4096);
    int refused = run_memory_check(&dit, &vae, &o, 1, 0, 0);
    char message[1024];
    snprintf(message, sizeof message, "%s", error_message());
    o = options(64);
    int small = run_memory_check(&dit, &vae, &o, 1, 0, 0);
    CHECK(setrlimit(RLIMIT_AS, &before) == 0);
    CHECK(refused == -1 && small == 0);
    CHECK_MSG(strstr(message, "a 4096x4096 image (65536 image tokens) needs about") &&
                  strstr(message, "GiB for the VAE") && strstr(message, "address-space limit (ulimit -v, 2.9 GiB)"),
              "message: %s", message);

    /* An allocation no machine has: the arena names its stage. */
    backend *be = backend_cpu_create();
    CHECK(be != NULL);
    arena a;
    arena_init(&a, be);
    a.name = "the VAE decoder's activations";
    CHECK(arena_alloc(&a, (size_t)1 << 60) == NULL);
    CHECK_MSG(!strncmp(error_message(), "the VAE decoder's activations: out of memory", 44), "message: %s",
              error_message());
    arena_free(&a);
    backend_destroy(be);
    return test_finish("test_run_memory");
}
