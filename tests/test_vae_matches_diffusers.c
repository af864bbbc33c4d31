/* The CPU AutoencoderKL reproduces diffusers on the committed fixtures
 * (tools/make_vae_fixtures.py): decode and encode (posterior mean) within 1e-4
 * of each output's scale. vae_sd: SD-like, quant convs, 4 levels; vae_flux:
 * 16 latent channels, no quant convs, shift_factor, 2 resnets per level;
 * vae_tiny_noattn: 2 levels (downscale 2), no mid-block attention, odd sizes.
 * A warm arena decodes again without allocating; bad inputs and unsupported
 * configs fail with an error that names what is wrong. */
#include "core/error.h"
#include "io/safetensors.h"
#include "test_util.h"
#include "vae/vae.h"
#include "vae/vae_blocks.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void compare(const char *fixture, const char *name, const float *got, const float *want, int64_t n)
{
    double scale = test_max_abs(want, n), diff = test_max_abs_diff(got, want, n);
    CHECK_MSG(diff <= 1e-4 * (scale > 1 ? scale : 1), "%s %s: max abs diff %.3g (scale %.3g)", fixture, name, diff,
              scale);
    printf("  %-16s %-14s max abs diff %.3g (scale %.3g)\n", fixture, name, diff, scale);
}

/* The tensor `name` of io as F32, its shape in shape[3]. */
static float *read_image(const safetensors *io, const char *name, int64_t *shape)
{
    const safetensors_entry *e = safetensors_find(io, name);
    CHECK_MSG(e && e->ndim == 3, "fixture lacks a 3-D %s", name);
    if (!e || e->ndim != 3) return NULL;
    memcpy(shape, e->shape, 3 * sizeof(int64_t));
    float *data = malloc((size_t)(shape[0] * shape[1] * shape[2]) * sizeof(float));
    CHECK_MSG(safetensors_read_f32(io, name, 3, shape, data) == 0, "%s", error_message());
    return data;
}

static void check_error(int status, const char *needle)
{
    CHECK_MSG(status != 0, "expected an error containing \"%s\"", needle);
    CHECK_MSG(strstr(error_message(), needle) != NULL, "error \"%s\" lacks \"%s\"", error_message(), needle);
}

static void check_bad_inputs(const vae_model *model, arena *scratch, const float *latents, float *out)
{
    const vae_config *cfg = &model->cfg;
    check_error(vae_decode(model, scratch, latents, cfg->latent_channels + 1, 2, 3, out), "latent_channels");
    check_error(vae_decode(model, scratch, latents, cfg->latent_channels, 0, 3, out), "not positive");
    check_error(vae_encode(model, scratch, latents, cfg->in_channels, cfg->downscale + 1, cfg->downscale, out),
                "not a multiple of the VAE's downscale factor");
    check_error(vae_encode(model, scratch, latents, cfg->in_channels + 1, cfg->downscale, cfg->downscale, out),
                "in_channels");
    check_error(vae_encode(model, scratch, latents, cfg->in_channels, -cfg->downscale, cfg->downscale, out),
                "not positive");
}

static void check_fixture(const char *fixture)
{
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/%s/vae", MOEDIT_FIXTURES, fixture);
    snprintf(path, sizeof path, "%s/%s/io.safetensors", MOEDIT_FIXTURES, fixture);
    backend *be = backend_cpu_create();
    vae_model model;
    safetensors *io = NULL;
    CHECK_MSG(safetensors_open(&io, path) == 0, "%s", error_message());
    CHECK_MSG(vae_model_load(&model, be, dir, 0, 0) == 0, "%s", error_message());
    if (!io || test_failures) return;

    int64_t latent_shape[3], decoded_shape[3], image_shape[3], mean_shape[3];
    float *latents = read_image(io, "latents", latent_shape), *want_decoded = read_image(io, "decoded", decoded_shape);
    float *image = read_image(io, "image", image_shape), *want_mean = read_image(io, "encoded_mean", mean_shape);
    if (!latents || !want_decoded || !image || !want_mean) return;
    int64_t n_decoded = decoded_shape[0] * decoded_shape[1] * decoded_shape[2];
    int64_t n_mean = mean_shape[0] * mean_shape[1] * mean_shape[2];
    CHECK(decoded_shape[1] == latent_shape[1] * model.cfg.downscale && mean_shape[0] == model.cfg.latent_channels);
    float *decoded = calloc((size_t)n_decoded, sizeof(float)), *mean = calloc((size_t)n_mean, sizeof(float));

    arena scratch;
    arena_init(&scratch, be);
    CHECK_MSG(vae_decode(&model, &scratch, latents, latent_shape[0], latent_shape[1], latent_shape[2], decoded) == 0,
              "%s", error_message());
    compare(fixture, "decoded", decoded, want_decoded, n_decoded);
    CHECK_MSG(vae_encode(&model, &scratch, image, image_shape[0], image_shape[1], image_shape[2], mean) == 0, "%s",
              error_message());
    compare(fixture, "encoded_mean", mean, want_mean, n_mean);

    /* After one reset the arena holds the peak in one block: no more allocations. */
    CHECK(arena_reset(&scratch) == 0);
    size_t allocations = scratch.block_allocations;
    memset(decoded, 0, (size_t)n_decoded * sizeof(float));
    CHECK(vae_decode(&model, &scratch, latents, latent_shape[0], latent_shape[1], latent_shape[2], decoded) == 0);
    CHECK(vae_encode(&model, &scratch, image, image_shape[0], image_shape[1], image_shape[2], mean) == 0);
    CHECK_MSG(scratch.block_allocations == allocations, "warm arena allocated %zu blocks",
              scratch.block_allocations - allocations);
    CHECK(scratch.in_use == 0);
    compare(fixture, "decoded again", decoded, want_decoded, n_decoded);

    check_bad_inputs(&model, &scratch, latents, decoded);

    free(decoded), free(mean), free(latents), free(want_decoded), free(image), free(want_mean);
    arena_free(&scratch);
    vae_model_free(&model);
    safetensors_close(io);
    backend_destroy(be);
}

static void check_configs(void)
{
    vae_config cfg;
    char path[600];
    snprintf(path, sizeof path, "%s/vae_sd/vae/config.json", MOEDIT_FIXTURES);
    CHECK_MSG(vae_config_load(&cfg, path) == 0, "%s", error_message());
    CHECK(cfg.shift_factor == 0 && cfg.use_quant_conv && cfg.use_post_quant_conv && cfg.downscale == 8);
    snprintf(path, sizeof path, "%s/vae_flux/vae/config.json", MOEDIT_FIXTURES);
    CHECK_MSG(vae_config_load(&cfg, path) == 0, "%s", error_message());
    CHECK(cfg.latent_channels == 16 && !cfg.use_quant_conv && !cfg.use_post_quant_conv);
    CHECK(fabs(cfg.shift_factor - 0.1159) < 1e-12 && fabs(cfg.scaling_factor - 0.3611) < 1e-12);
}

/* Writes text to a temporary config.json and loads it; returns the status. */
static int load_config_text(const char *text)
{
    char path[] = "/tmp/moedit_vae_config_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    vae_config cfg;
    int status = vae_config_load(&cfg, path);
    unlink(path);
    return status;
}

static void check_unsupported_configs(void)
{
    check_error(load_config_text("{\"block_out_channels\": [32, 64], \"norm_num_groups\": 8,"
                                 " \"down_block_types\": [\"DownEncoderBlock2D\", \"AttnDownEncoderBlock2D\"]}"),
                "key \"down_block_types\"[1] is \"AttnDownEncoderBlock2D\"");
    check_error(load_config_text("{\"block_out_channels\": [32, 64], \"norm_num_groups\": 8,"
                                 " \"down_block_types\": [\"DownEncoderBlock2D\", \"DownEncoderBlock2D\"],"
                                 " \"up_block_types\": [\"UpDecoderBlock2D\"]}"),
                "key \"up_block_types\" has 1 entries but block_out_channels has 2");
    check_error(load_config_text("{\"block_out_channels\": [30], \"norm_num_groups\": 8}"),
                "block_out_channels[0] = 30 is not a positive multiple of norm_num_groups = 8");
    check_error(load_config_text("{\"_class_name\": \"AutoencoderKLQwenImage\"}"), "key \"_class_name\"");
    check_error(load_config_text("{\"act_fn\": \"gelu\"}"), "key \"act_fn\"");
    CHECK_MSG(load_config_text("{\"block_out_channels\": [32], \"norm_num_groups\": 8, \"shift_factor\": null}") == 0,
              "%s", error_message());
}

/* FLUX's weights have no quant_conv: a config that asks for one names the missing tensor. */
static void check_missing_weights(void)
{
    char path[600];
    vae_config cfg;
    snprintf(path, sizeof path, "%s/vae_flux/vae/config.json", MOEDIT_FIXTURES);
    CHECK_MSG(vae_config_load(&cfg, path) == 0, "%s", error_message());
    snprintf(path, sizeof path, "%s/vae_flux/vae/diffusion_pytorch_model.safetensors", MOEDIT_FIXTURES);
    safetensors *st = NULL;
    CHECK_MSG(safetensors_open(&st, path) == 0, "%s", error_message());
    if (!st) return;
    backend *be = backend_cpu_create();
    vae_model model;
    cfg.use_quant_conv = 1;
    check_error(vae_model_load_config(&model, be, &cfg, st, 0, 0), "tensor \"quant_conv.weight\" not found");
    cfg.use_quant_conv = 0;
    cfg.latent_channels = 4;
    check_error(vae_model_load_config(&model, be, &cfg, st, 0, 0), "encoder.conv_out.weight");
    safetensors_close(st);
    backend_destroy(be);
}

int main(void)
{
    check_configs();
    check_unsupported_configs();
    check_missing_weights();
    check_fixture("vae_sd");
    check_fixture("vae_flux");
    check_fixture("vae_tiny_noattn");
    return test_finish("test_vae_matches_diffusers");
}
