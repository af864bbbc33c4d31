/* Row bands of a patch-parallel VAE pass; see vae_bands.h. */
#include "vae/vae_bands.h"

#include "core/error.h"
#include "parallel/layout.h"

#include <stdlib.h>
#include <string.h>

int vae_banded(const vae_exec *ex) { return ex->group && ex->group->size > 1; }

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

/* Host index of the padded rows into [x rows | top halo | bottom halo | zero row]. */
static void padded_index(int32_t *index, int64_t channels, int64_t rows, int top, int bottom, int first, int last)
{
    int64_t zero = channels * (rows + top + bottom), height = top + rows + bottom;
    for (int64_t c = 0; c < channels; c++)
        for (int64_t i = 0; i < height; i++) {
            int64_t source;
            if (i < top) source = first ? zero : channels * rows + c * top + i;
            else if (i >= top + rows) source = last ? zero : channels * (rows + top) + c * bottom + (i - top - rows);
            else source = c * rows + (i - top);
            index[c * height + i] = (int32_t)source;
        }
}

/* The rows {c * rows + first + i : i < count} of x[C * rows, W], packed. */
static int pack_rows(const vae_exec *ex, tensor out, tensor x2d, int64_t channels, int64_t rows, int64_t first,
                     int64_t count)
{
    int32_t *index = malloc((size_t)(channels * count) * sizeof(int32_t));
    tensor device_index = arena_tensor_typed(ex->scratch, DTYPE_I32, channels * count, 1);
    if (!index || !device_index.data) {
        free(index);
        return error_set("out of memory exchanging VAE halo rows");
    }
    for (int64_t c = 0; c < channels; c++)
        for (int64_t i = 0; i < count; i++) index[c * count + i] = (int32_t)(c * rows + first + i);
    ex->be->ops->upload(ex->be, device_index, (const float *)index);
    free(index);
    ex->be->ops->gather_rows(ex->be, out, x2d, device_index);
    return 0;
}

int vae_band_pad_rows(const vae_exec *ex, tensor x, int top, int bottom, tensor *padded)
{
    backend *be = ex->be;
    process_group *g = ex->group;
    int64_t channels = x.shape[0], rows = x.shape[1], width = x.shape[2];
    int first = g->rank == 0, last = g->rank == g->size - 1;
    int up = first ? -1 : g->rank - 1, down = last ? -1 : g->rank + 1;
    if (rows < top || rows < bottom) return error_set("VAE band of %lld rows is thinner than its halo", (long long)rows);
    int64_t body = channels * rows;
    tensor x2d = tensor_reshape_2d(x, body, width);
    tensor source = arena_tensor_2d(ex->scratch, body + channels * (top + bottom) + 1, width);
    tensor to_below = arena_tensor_2d(ex->scratch, channels * top, width);
    tensor to_above = arena_tensor_2d(ex->scratch, channels * bottom, width);
    *padded = vae_scratch_image(ex, channels, top + rows + bottom, width);
    if (!source.data || !to_below.data || !to_above.data || !padded->data) return error_set("out of memory for VAE halo rows");
    be->ops->copy(be, tensor_row_slice(source, 0, body), x2d);
    be->ops->fill(be, tensor_row_slice(source, body + channels * (top + bottom), 1), 0.0f);
    /* My last rows are the top halo of the band below; my first rows the bottom halo of the band above. */
    if (pack_rows(ex, to_below, x2d, channels, rows, rows - top, top) ||
        pack_rows(ex, to_above, x2d, channels, rows, 0, bottom) ||
        g->ops->send_recv(g, to_below, down, tensor_row_slice(source, body, channels * top), up) ||
        g->ops->send_recv(g, to_above, up, tensor_row_slice(source, body + channels * top, channels * bottom), down))
        return -1;
    int64_t height = top + rows + bottom;
    int32_t *index = malloc((size_t)(channels * height) * sizeof(int32_t));
    tensor device_index = arena_tensor_typed(ex->scratch, DTYPE_I32, channels * height, 1);
    if (!index || !device_index.data) {
        free(index);
        return error_set("out of memory for VAE halo rows");
    }
    padded_index(index, channels, rows, top, bottom, first, last);
    be->ops->upload(be, device_index, (const float *)index);
    free(index);
    be->ops->gather_rows(be, tensor_reshape_2d(*padded, channels * height, width), source, device_index);
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
    float *host = malloc((size_t)(channels * total * width) * sizeof(float));
    int status = gathered.data && host ? 0 : error_set("out of memory collecting VAE bands");
    if (status == 0) status = g->ops->all_gather_rows(g, gathered, tensor_reshape_2d(x, channels * rows, width), counts);
    if (status == 0) {
        be->ops->download(be, host, gathered);
        status = be->ops->status(be);
    }
    if (status == 0) {
        /* Gathered as [band][C][band rows][W]; the image is [C][rows][W]. */
        int64_t at = 0, first = 0;
        for (int p = 0; p < g->size; p++) {
            int64_t band = counts[p] / channels;
            for (int64_t c = 0; c < channels; c++, at += band * width)
                memcpy(full + (c * total + first) * width, host + at, (size_t)(band * width) * sizeof(float));
            first += band;
        }
    }
    free(host);
    arena_release(ex->scratch, mark);
    return status;
}
