/* Timestep sinusoid, RoPE table, patchify/unpatchify; see dit_embed.h. */
#include "dit/dit_embed.h"

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

void dit_patchify(const float *latents, int64_t channels, int64_t height, int64_t width, int patch,
                  int64_t token_rows, float *tokens)
{
    int64_t grid_w = width / patch, features = (int64_t)patch * patch * channels;
    memset(tokens, 0, (size_t)(token_rows * features) * sizeof(float));
    for (int64_t c = 0; c < channels; c++)
        for (int64_t y = 0; y < height; y++)
            for (int64_t x = 0; x < width; x++) {
                int64_t token = (y / patch) * grid_w + x / patch;
                int64_t feature = ((y % patch) * patch + x % patch) * channels + c;
                tokens[token * features + feature] = latents[(c * height + y) * width + x];
            }
}

void dit_unpatchify(const float *tokens, int64_t channels, int64_t height, int64_t width, int patch,
                    float *latents)
{
    int64_t grid_w = width / patch, features = (int64_t)patch * patch * channels;
    for (int64_t c = 0; c < channels; c++)
        for (int64_t y = 0; y < height; y++)
            for (int64_t x = 0; x < width; x++) {
                int64_t token = (y / patch) * grid_w + x / patch;
                int64_t feature = ((y % patch) * patch + x % patch) * channels + c;
                latents[(c * height + y) * width + x] = tokens[token * features + feature];
            }
}
