/* Timestep sinusoid, RoPE table, patchify/unpatchify; see dit_embed.h. */
#include "dit/dit_embed.h"

#include "core/host_parallel.h"

#include <math.h>
#include <string.h>

void dit_timestep_sinusoid(float timestep, float out[DIT_TIMESTEP_CHANNELS])
{
    /* float32 arithmetic in the same order as diffusers' get_timestep_embedding. */
    const int half = DIT_TIMESTEP_CHANNELS / 2;
    const float log_period = (float)-log(10000.0);
    for (int i = 0; i < half; i++) {
        float frequency = expf(log_period * (float)i / (float)half);
        float angle = timestep * frequency;
        out[i] = cosf(angle);
        out[half + i] = sinf(angle);
    }
}

void dit_rope_table(const dit_config *cfg, int index, int64_t grid_h, int64_t grid_w, float *out)
{
    for (int64_t row = 0; row < grid_h; row++) {
        for (int64_t col = 0; col < grid_w; col++) {
            double ids[DIT_MAX_ROPE_AXES] = {(double)index, (double)row, (double)col, 0};
            float *pairs = out + (row * grid_w + col) * cfg->rope_dim;
            for (int axis = 0; axis < cfg->rope_axes; axis++) {
                int dim = cfg->rope_axes_dim[axis];
                for (int j = 0; j < dim / 2; j++) {
                    double omega = 1.0 / pow(cfg->rope_theta, (double)(2 * j) / dim);
                    double angle = ids[axis] * omega;
                    *pairs++ = (float)cos(angle);
                    *pairs++ = (float)sin(angle);
                }
            }
        }
    }
}

/* Token (ty, tx) holds the patch x patch pixels below it, each pixel's C
 * channels together: feature (py * patch + px) * C + c. Both directions walk
 * the latent rows in order and one band of tokens (a token row) per
 * iteration, so the bands run in parallel: this runs between every two
 * transformer forwards, with the device idle. */
static void patch_band(float *latents, float *tokens, int64_t channels, int64_t height, int64_t width, int patch,
                       int64_t ty, int to_tokens)
{
    int64_t grid_w = width / patch, features = (int64_t)patch * patch * channels;
    for (int64_t c = 0; c < channels; c++)
        for (int py = 0; py < patch; py++) {
            float *row = latents + (c * height + ty * patch + py) * width;
            float *band = tokens + ty * grid_w * features + (int64_t)py * patch * channels + c;
            for (int64_t tx = 0; tx < grid_w; tx++)
                for (int px = 0; px < patch; px++) {
                    float *feature = band + tx * features + (int64_t)px * channels;
                    if (to_tokens)
                        *feature = row[tx * patch + px];
                    else
                        row[tx * patch + px] = *feature;
                }
        }
}

void dit_patchify(const float *latents, int64_t channels, int64_t height, int64_t width, int patch,
                  int64_t token_rows, float *tokens)
{
    int64_t grid_h = height / patch, features = (int64_t)patch * patch * channels;
    int64_t valid = grid_h * (width / patch);
    if (token_rows > valid) /* a non-square image's padding rows */
        memset(tokens + valid * features, 0, (size_t)((token_rows - valid) * features) * sizeof(float));
#pragma omp parallel for if (channels * height * width > HOST_PARALLEL_MIN_VALUES)
    for (int64_t ty = 0; ty < grid_h; ty++) patch_band((float *)latents, tokens, channels, height, width, patch, ty, 1);
}

void dit_unpatchify(const float *tokens, int64_t channels, int64_t height, int64_t width, int patch,
                    float *latents)
{
#pragma omp parallel for if (channels * height * width > HOST_PARALLEL_MIN_VALUES)
    for (int64_t ty = 0; ty < height / patch; ty++)
        patch_band(latents, (float *)tokens, channels, height, width, patch, ty, 0);
}
