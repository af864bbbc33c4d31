/* dit_patchify / dit_unpatchify against the per-element definition (token
 * (y / p) * (W / p) + x / p, feature ((y % p) * p + x % p) * C + c holds
 * latents[c, y, x]; padding rows are zero), on a small odd shape with
 * padding rows and on a 16-channel 256x128 latent that takes the threaded
 * path; unpatchify must give the latents back bit for bit. */
#include "dit/dit_embed.h"
#include "test_util.h"

#include <stdint.h>
#include <string.h>

static void check_shape(int64_t channels, int64_t height, int64_t width, int patch, int64_t padding_rows)
{
    int64_t grid_w = width / patch, features = (int64_t)patch * patch * channels;
    int64_t valid = (height / patch) * grid_w, token_rows = valid + padding_rows, n = channels * height * width;
    float *latents = malloc((size_t)n * sizeof(float)), *back = malloc((size_t)n * sizeof(float));
    float *tokens = malloc((size_t)(token_rows * features) * sizeof(float));
    if (!latents || !back || !tokens) {
        CHECK_MSG(0, "out of memory");
        return;
    }
    for (int64_t i = 0; i < n; i++) latents[i] = (float)i + 0.25f; /* every value distinct */
    for (int64_t i = 0; i < token_rows * features; i++) tokens[i] = NAN;
    dit_patchify(latents, channels, height, width, patch, token_rows, tokens);
    int64_t wrong = 0;
    for (int64_t c = 0; c < channels; c++)
        for (int64_t y = 0; y < height; y++)
            for (int64_t x = 0; x < width; x++) {
                int64_t token = (y / patch) * grid_w + x / patch;
                int64_t feature = ((y % patch) * patch + x % patch) * channels + c;
                wrong += tokens[token * features + feature] != latents[(c * height + y) * width + x];
            }
    for (int64_t i = valid * features; i < token_rows * features; i++) wrong += tokens[i] != 0.0f;
    CHECK_MSG(wrong == 0, "%lld of %lld token values wrong for C %lld, %lldx%lld, patch %d", (long long)wrong,
              (long long)(token_rows * features), (long long)channels, (long long)height, (long long)width, patch);
    memset(back, 0, (size_t)n * sizeof(float));
    dit_unpatchify(tokens, channels, height, width, patch, back);
    CHECK_MSG(memcmp(back, latents, (size_t)n * sizeof(float)) == 0, "unpatchify does not invert patchify");
    free(latents);
    free(back);
    free(tokens);
}

int main(void)
{
    check_shape(3, 6, 10, 2, 4);     /* non-square, with padding rows */
    check_shape(5, 9, 6, 3, 0);      /* patch 3 */
    check_shape(16, 256, 128, 2, 0); /* over the threading threshold */
    return test_finish("test_dit_patchify");
}
