/* Fuzz target: a model folder's config.json files through every config
 * loader: the transformer's (dit/dit_config.c), the VAE's (vae/vae_config.c)
 * and the scheduler's (pipelines/scheduler.c, FlowMatch and UniPC), over the
 * JSON reader and typed getters of core/config.c.
 *
 * Each input is written as config.json and given to all three loaders (a
 * transformer config is a malformed VAE config, and so on: the refusals are
 * fuzzed too). What a loader accepts is used as the pipeline uses it: the
 * transformer's parameter counts and token count, the scheduler's timesteps
 * at a few step counts. No input may crash, overflow or leak. */
#include "tests/fuzz/fuzz_files.h"

#include "core/config.h"
#include "core/error.h"
#include "dit/dit_config.h"
#include "pipelines/scheduler.h"
#include "vae/vae_config.h"

static void use_dit_config(const dit_config *cfg)
{
    (void)dit_parameter_count(cfg);
    (void)dit_active_parameter_count(cfg);
    (void)dit_num_blocks(cfg);
    int64_t side = 2 * (int64_t)cfg->patch_size;
    (void)dit_image_tokens(cfg, side, side);
    (void)dit_image_tokens(cfg, side, 2 * side);
}

static void use_scheduler_config(const scheduler_config *cfg)
{
    static const int steps[] = {1, 2, 7, 50};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        scheduler s = {0};
        if (scheduler_set_timesteps(&s, cfg, steps[i], 4096, NULL) == 0) {
            for (int k = 0; k < s.steps; k++) (void)scheduler_timestep(&s, k);
            (void)scheduler_sigma(&s, s.steps);
            int start;
            (void)scheduler_start_index(&s, 0.6, &start);
        }
        scheduler_free(&s);
    }
}

/* The generic getters on whatever object it is, at the keys of all three loaders. */
static void use_generic_getters(const char *path)
{
    config *c = NULL;
    if (config_load(&c, path)) return;
    int64_t ints[8];
    double floats[8];
    const char *strings[8];
    int count;
    (void)config_get_int_array(c, "axes_dims_rope", ints, 8, &count);
    (void)config_get_float_array(c, "block_out_channels", floats, 8, &count);
    (void)config_get_string_array(c, "down_block_types", strings, 8, &count);
    (void)config_get_string_array(c, "vae", strings, 8, &count);
    config_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file_write("config.json", data, size);
    dit_config dit;
    if (dit_config_load(&dit, path) == 0) use_dit_config(&dit);
    vae_config vae;
    (void)vae_config_load(&vae, path);
    scheduler_config scheduler;
    if (scheduler_load(&scheduler, path) == 0) use_scheduler_config(&scheduler);
    use_generic_getters(path);
    error_clear();
    return 0;
}
