/* Row bands of a patch-parallel VAE pass; see vae_bands.h. */
#include "vae/vae_bands.h"

#include "core/error.h"
#include "parallel/layout.h"

#include <stdlib.h>
#include <string.h>

int vae_band_init(vae_exec *ex, process_group *group, int64_t latent_rows)
{
    ex->group = group;
    ex->latent_rows = latent_rows;
    ex->band_first = 0;
    ex->band_rows = latent_rows;
    if (!vae_banded(ex)) return 0;
    if (latent_rows < group->size)
        return error_set("--vae-patch-parallel-size %d: more VAE ranks than the %lld latent rows of the image",
                         group->size, (long long)latent_rows);
    layout_split_rows(latent_rows, group->size, group->rank, &ex->band_first, &ex->band_rows);
    return 0;
}

int64_t vae_band_global_rows(const vae_exec *ex, int64_t local_rows)
{
    return ex->latent_rows * (local_rows / ex->band_rows);
}

int64_t vae_band_rows_of(const vae_exec *ex, int p, int64_t local_rows)
{
    int64_t first, rows;
    layout_split_rows(ex->latent_rows, ex->group->size, p, &first, &rows);
    return rows * (local_rows / ex->band_rows);
}

int vae_band_halos(const vae_exec *ex, tensor x, int top, int bottom, tensor *from_above, tensor *from_below)
{
    backend *be = ex->be;
    process_group *g = ex->group;
    int64_t channels = x.shape[0], rows = x.shape[1], width = x.shape[2];
    int up = g->rank == 0 ? -1 : g->rank - 1, down = g->rank == g->size - 1 ? -1 : g->rank + 1;
    if (rows < top || rows < bottom) return error_set("VAE band of %lld rows is thinner than its halo", (long long)rows);
    /* My last rows are the top halo of the band below; my first rows the bottom halo of the band above. */
    tensor to_below = vae_scratch_image(ex, channels, top, width), to_above = vae_scratch_image(ex, channels, bottom, width);
    *from_above = vae_scratch_image(ex, channels, top, width);
    *from_below = vae_scratch_image(ex, channels, bottom, width);
    if (!to_below.data || !to_above.data || !from_above->data || !from_below->data)
        return error_set("out of memory for VAE halo rows");
    be->ops->copy_rows(be, to_below, 0, x, rows - top, top);
    be->ops->copy_rows(be, to_above, 0, x, 0, bottom);
    /* The image's own edges are zeros, exactly as serial padding. */
    if (up < 0) be->ops->fill(be, *from_above, 0.0f);
    if (down < 0) be->ops->fill(be, *from_below, 0.0f);
    return g->ops->send_recv(g, to_below, down, *from_above, up) || g->ops->send_recv(g, to_above, up, *from_below, down)
               ? -1
               : 0;
}

int vae_band_pad_rows(const vae_exec *ex, tensor x, int top, int bottom, tensor *padded)
{
    backend *be = ex->be;
    int64_t channels = x.shape[0], rows = x.shape[1], width = x.shape[2];
    tensor from_above, from_below;
    if (vae_band_halos(ex, x, top, bottom, &from_above, &from_below)) return -1;
    *padded = vae_scratch_image(ex, channels, top + rows + bottom, width);
    if (!padded->data) return error_set("out of memory for VAE halo rows");
    be->ops->copy_rows(be, *padded, 0, from_above, 0, top);
    be->ops->copy_rows(be, *padded, top, x, 0, rows);
    be->ops->copy_rows(be, *padded, top + rows, from_below, 0, bottom);
    return 0;
}

int vae_band_gather_tokens(const vae_exec *ex, tensor out, tensor x, int64_t local_rows)
{
    process_group *g = ex->group;
    int64_t counts[1024];
    if (g->size > 1024) return error_set("VAE group of %d ranks is too large", g->size);
    int64_t tokens_per_row = tensor_rows(&x) / local_rows;
    for (int p = 0; p < g->size; p++) counts[p] = vae_band_rows_of(ex, p, local_rows) * tokens_per_row;
    return g->ops->all_gather_rows(g, out, x, counts);
}

int vae_band_upload(const vae_exec *ex, vae_activations *acts, const float *full, int64_t channels, int64_t scale,
                    int64_t width)
{
    int64_t rows = ex->band_rows * scale, total = ex->latent_rows * scale, first = ex->band_first * scale;
    if (!vae_banded(ex)) {
        vae_activations_upload(acts, full, channels, rows, width);
        return 0;
    }
    float *band = malloc((size_t)(channels * rows * width) * sizeof(float));
    if (!band) return error_set("out of memory for a VAE band");
    for (int64_t c = 0; c < channels; c++)
        memcpy(band + c * rows * width, full + (c * total + first) * width, (size_t)(rows * width) * sizeof(float));
    vae_activations_upload(acts, band, channels, rows, width);
    free(band);
    return 0;
}

int vae_band_collect(const vae_exec *ex, tensor x, float *full)
{
    backend *be = ex->be;
    int64_t channels = x.shape[0], rows = x.shape[1], width = x.shape[2];
    if (!vae_banded(ex)) {
        be->ops->download(be, full, x);
        return be->ops->status(be); /* a device fault anywhere in the VAE */
    }
    process_group *g = ex->group;
    int64_t total = vae_band_global_rows(ex, rows), counts[1024];
    if (g->size > 1024) return error_set("VAE group of %d ranks is too large", g->size);
    for (int p = 0; p < g->size; p++) counts[p] = channels * vae_band_rows_of(ex, p, rows);
    arena_mark_t mark = arena_mark(ex->scratch);
    tensor gathered = arena_tensor_2d(ex->scratch, channels * total, width);
    tensor image = vae_scratch_image(ex, channels, total, width);
    int status = gathered.data && image.data ? 0 : error_set("out of memory collecting VAE bands");
    if (status == 0) status = g->ops->all_gather_rows(g, gathered, tensor_reshape_2d(x, channels * rows, width), counts);
    if (status == 0) {
        /* Gathered as [band][C][band rows][W]; the image is [C][rows][W]:
         * each band pasted into its rows on the device, then one download
         * straight into the caller's image (a host staging buffer, fresh per
         * decode, cost more in page faults than the copy itself). */
        int64_t at = 0, first = 0;
        for (int p = 0; p < g->size; p++) {
            int64_t band = counts[p] / channels;
            int64_t shape[3] = {channels, band, width};
            tensor part = tensor_make(image.dtype, image.device, 3, shape);
            part.data = tensor_row_slice(gathered, at, counts[p]).data;
            be->ops->copy_rows(be, image, first, part, 0, band);
            at += counts[p];
            first += band;
        }
        be->ops->download(be, full, image);
        status = be->ops->status(be);
    }
    arena_release(ex->scratch, mark);
    return status;
}
