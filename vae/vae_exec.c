/* A VAE pass's images and activation buffers; see vae_exec.h. */
#include "vae/vae_exec.h"

#include "core/error.h"
#include "parallel/process_group.h"

tensor vae_image(const backend *be, void *data, int64_t channels, int64_t height, int64_t width)
{
    int64_t shape[3] = {channels, height, width};
    tensor t = tensor_make(be->dtype, be->device, 3, shape);
    t.data = data;
    return t;
}

tensor vae_scratch_image(const vae_exec *ex, int64_t channels, int64_t height, int64_t width)
{
    tensor t = vae_image(ex->be, NULL, channels, height, width);
    t.data = arena_alloc(ex->scratch, tensor_nbytes(&t));
    return t;
}

int vae_activations_init(vae_activations *acts, const vae_exec *ex, int64_t capacity)
{
    size_t bytes = (size_t)capacity * dtype_size(ex->be->dtype);
    acts->be = ex->be;
    acts->current = 0;
    acts->x = tensor_none();
    acts->buffer[0] = arena_alloc(ex->scratch, bytes);
    acts->buffer[1] = acts->buffer[0] ? arena_alloc(ex->scratch, bytes) : NULL;
    if (!acts->buffer[1]) return error_prefix("VAE activations (2 x %zu MiB)", bytes >> 20);
    return 0;
}

tensor vae_activations_next(const vae_activations *acts, int64_t channels, int64_t height, int64_t width)
{
    return vae_image(acts->be, acts->buffer[1 - acts->current], channels, height, width);
}

void vae_activations_advance(vae_activations *acts, tensor y)
{
    acts->x = y;
    acts->current = 1 - acts->current;
}

void vae_activations_upload(vae_activations *acts, const float *host, int64_t channels, int64_t height,
                            int64_t width)
{
    acts->current = 0;
    acts->x = vae_image(acts->be, acts->buffer[0], channels, height, width);
    acts->be->ops->upload(acts->be, acts->x, host);
}

int vae_banded(const vae_exec *ex) { return ex->group && ex->group->size > 1; }
