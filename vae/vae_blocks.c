/* Shared AutoencoderKL blocks: GroupNorm, convolution, ResnetBlock2D and the
 * mid-block attention; see vae_blocks.h. They mirror diffusers'
 * resnet.py (ResnetBlock2D), attention_processor.py (Attention with
 * group_norm, AttnProcessor2_0) and unet_2d_blocks.py (UNetMidBlock2D). */
#include "vae/vae_blocks.h"
#include "vae/vae_bands.h"

#include "core/error.h"

#include <stdlib.h>

/* Output rows [y_row, y_row + p) of y from a strip of 3p input rows: rows
 * [upper_row, upper_row + upper_rows) of `upper`, then the rest of the strip
 * from `lower` at lower_row; `edge` is the strip's p output rows. */
static void redo_edge(backend *be, const vae_conv *conv, const int sides[4], tensor strip, tensor edge, tensor upper,
                      int64_t upper_row, int64_t upper_rows, tensor lower, int64_t lower_row, tensor y, int64_t y_row)
{
    be->ops->copy_rows(be, strip, 0, upper, upper_row, upper_rows);
    be->ops->copy_rows(be, strip, upper_rows, lower, lower_row, strip.shape[1] - upper_rows);
    be->ops->conv2d(be, edge, strip, conv->weight, conv->bias, conv->kernel, 1, sides);
    be->ops->copy_rows(be, y, y_row, edge, 0, edge.shape[1]);
}

/* A same convolution (stride 1, p rows of padding above and below) of a band
 * without copying the band into a padded tensor: the band is convolved with
 * zero rows around it, then the p output rows at each inner edge, the ones
 * that reach into a neighbour, are computed again from a thin strip (the p
 * halo rows and the band's 2p rows next to them) and pasted over: the
 * padded copies were a large share of a banded decode (docs/benchmarks.md,
 * "Figures cited by source comments"). */
static int conv_band_same(const vae_exec *ex, tensor y, tensor x, const vae_conv *conv, const int pad[4])
{
    backend *be = ex->be;
    process_group *g = ex->group;
    int p = pad[0];
    int64_t channels = x.shape[0], rows = x.shape[1], width = x.shape[2];
    int64_t cout = y.shape[0], out_width = y.shape[2];
    be->ops->conv2d(be, y, x, conv->weight, conv->bias, conv->kernel, 1, pad);
    arena_mark_t mark = arena_mark(ex->scratch);
    tensor from_above, from_below;
    tensor strip, edge;
    int status = vae_band_halos(ex, x, p, p, &from_above, &from_below);
    if (status == 0) {
        strip = vae_scratch_image(ex, channels, 3 * p, width);
        edge = vae_scratch_image(ex, cout, p, out_width);
        if (!strip.data || !edge.data) status = error_set("out of memory for VAE halo rows");
    }
    if (status) {
        arena_release(ex->scratch, mark);
        return -1;
    }
    const int sides[4] = {0, 0, pad[2], pad[3]};
    /* The top edge: rows -p .. 2p - 1 of the band make output rows 0 .. p - 1; the bottom one likewise. */
    if (g->rank > 0) redo_edge(be, conv, sides, strip, edge, from_above, 0, p, x, 0, y, 0);
    if (g->rank < g->size - 1) redo_edge(be, conv, sides, strip, edge, x, rows - 2 * p, 2 * p, from_below, 0, y, rows - p);
    arena_release(ex->scratch, mark);
    return 0;
}

int vae_conv_forward(const vae_exec *ex, tensor y, tensor x, const vae_conv *conv, int stride, const int pad[4])
{
    if (vae_banded(ex) && stride == 1 && pad[0] > 0 && pad[0] == pad[1] && conv->kernel == 2 * pad[0] + 1 &&
        x.shape[1] >= 2 * pad[0]) {
        if (conv_band_same(ex, y, x, conv, pad)) return error_prefix("VAE convolution halo");
        return 0;
    }
    if (!vae_banded(ex) || (pad[0] == 0 && pad[1] == 0)) {
        ex->be->ops->conv2d(ex->be, y, x, conv->weight, conv->bias, conv->kernel, stride, pad);
        return 0;
    }
    arena_mark_t mark = arena_mark(ex->scratch);
    tensor padded;
    if (vae_band_pad_rows(ex, x, pad[0], pad[1], &padded)) return error_prefix("VAE convolution halo");
    const int sides[4] = {0, 0, pad[2], pad[3]};
    ex->be->ops->conv2d(ex->be, y, padded, conv->weight, conv->bias, conv->kernel, stride, sides);
    arena_release(ex->scratch, mark);
    return 0;
}

int vae_conv_same(const vae_exec *ex, tensor y, tensor x, const vae_conv *conv)
{
    int p = conv->kernel / 2, pad[4] = {p, p, p, p};
    return vae_conv_forward(ex, y, x, conv, 1, pad);
}

int vae_group_norm_forward(const vae_exec *ex, tensor y, tensor x, const vae_group_norm *norm, int silu)
{
    backend *be = ex->be;
    arena_mark_t mark = arena_mark(ex->scratch);
    tensor stats = arena_tensor_typed(ex->scratch, DTYPE_F32, norm->groups, 2);
    if (!stats.data) return error_prefix("VAE group norm statistics");
    be->ops->group_norm_stats(be, stats, x, norm->groups);
    int64_t count = tensor_numel(&x) / norm->groups;
    if (vae_banded(ex)) { /* statistics of the whole image: sum over the bands */
        if (ex->group->ops->all_reduce_sum(ex->group, stats)) return -1;
        count = count / x.shape[1] * vae_band_global_rows(ex, x.shape[1]);
    }
    be->ops->group_norm_apply(be, y, x, stats, count, norm->weight, norm->bias, VAE_NORM_EPS, silu);
    arena_release(ex->scratch, mark);
    return 0;
}

int vae_resnet_forward(const vae_exec *ex, tensor y, tensor x, const vae_resnet *resnet)
{
    backend *be = ex->be;
    int64_t cin = x.shape[0], cout = resnet->conv1.out_channels, h = x.shape[1], w = x.shape[2];
    arena_mark_t mark = arena_mark(ex->scratch);
    /* One scratch image serves norm1's output, norm2's output, then the shortcut. */
    tensor t = vae_scratch_image(ex, cin > cout ? cin : cout, h, w);
    if (!t.data) return error_prefix("VAE resnet block");
    tensor t_in = vae_image(be, t.data, cin, h, w), t_out = vae_image(be, t.data, cout, h, w);
    int status = vae_group_norm_forward(ex, t_in, x, &resnet->norm1, 1);
    if (status == 0) status = vae_conv_same(ex, y, t_in, &resnet->conv1); /* y holds conv1's output for now */
    if (status == 0) status = vae_group_norm_forward(ex, t_out, y, &resnet->norm2, 1);
    if (status == 0) status = vae_conv_same(ex, y, t_out, &resnet->conv2);
    if (status == 0 && resnet->conv_shortcut.weight.data) {
        status = vae_conv_same(ex, t_out, x, &resnet->conv_shortcut);
        if (status == 0) be->ops->add(be, y, y, t_out);
    } else if (status == 0) {
        be->ops->add(be, y, y, x);
    }
    arena_release(ex->scratch, mark);
    return status;
}

int vae_attention_forward(const vae_exec *ex, tensor y, tensor x, const vae_attention *attention)
{
    backend *be = ex->be;
    int64_t c = x.shape[0], s = x.shape[1] * x.shape[2];
    arena_mark_t mark = arena_mark(ex->scratch);
    tensor normed = vae_scratch_image(ex, c, x.shape[1], x.shape[2]);
    tensor tokens = arena_tensor_2d(ex->scratch, s, c); /* [S, C]: normed^T, later the projected output */
    tensor q = arena_tensor_2d(ex->scratch, s, c), k = arena_tensor_2d(ex->scratch, s, c);
    tensor v = arena_tensor_2d(ex->scratch, s, c), out = arena_tensor_2d(ex->scratch, s, c);
    /* Banded: queries of this band, keys and values of every band. */
    int64_t all = vae_banded(ex) ? vae_band_global_rows(ex, x.shape[1]) * x.shape[2] : s;
    tensor k_all = vae_banded(ex) ? arena_tensor_2d(ex->scratch, all, c) : k;
    tensor v_all = vae_banded(ex) ? arena_tensor_2d(ex->scratch, all, c) : v;
    int status = normed.data && tokens.data && q.data && k.data && v.data && out.data && k_all.data && v_all.data
                     ? 0
                     : error_prefix("VAE attention over %lld tokens", (long long)all);
    if (status == 0) status = vae_group_norm_forward(ex, normed, x, &attention->group_norm, 0);
    if (status == 0) be->ops->transpose(be, tokens, tensor_reshape_2d(normed, c, s));
    if (status == 0) {
        be->ops->linear(be, q, tokens, attention->to_q.weight, attention->to_q.bias);
        be->ops->linear(be, k, tokens, attention->to_k.weight, attention->to_k.bias);
        be->ops->linear(be, v, tokens, attention->to_v.weight, attention->to_v.bias);
        if (vae_banded(ex))
            status = vae_band_gather_tokens(ex, k_all, k, x.shape[1]) || vae_band_gather_tokens(ex, v_all, v, x.shape[1]);
    }
    if (status == 0) {
        be->ops->attention(be, out, tensor_none(), q, k_all, v_all, 1);
        be->ops->linear(be, tokens, out, attention->to_out.weight, attention->to_out.bias);
        be->ops->transpose(be, tensor_reshape_2d(y, c, s), tokens);
    }
    if (status == 0) be->ops->add(be, y, y, x);
    arena_release(ex->scratch, mark);
    return status;
}

int vae_conv_stage(const vae_exec *ex, vae_activations *acts, const vae_conv *conv)
{
    tensor y = vae_activations_next(acts, conv->out_channels, acts->x.shape[1], acts->x.shape[2]);
    if (vae_conv_same(ex, y, acts->x, conv)) return -1;
    vae_activations_advance(acts, y);
    return 0;
}

int vae_norm_silu_stage(const vae_exec *ex, vae_activations *acts, const vae_group_norm *norm)
{
    tensor y = vae_activations_next(acts, acts->x.shape[0], acts->x.shape[1], acts->x.shape[2]);
    if (vae_group_norm_forward(ex, y, acts->x, norm, 1) != 0) return -1;
    vae_activations_advance(acts, y);
    return 0;
}

/* x = resnet(x) through the other buffer. */
static int resnet_stage(const vae_exec *ex, vae_activations *acts, const vae_resnet *resnet)
{
    tensor y = vae_activations_next(acts, resnet->conv1.out_channels, acts->x.shape[1], acts->x.shape[2]);
    if (vae_resnet_forward(ex, y, acts->x, resnet) != 0) return -1;
    vae_activations_advance(acts, y);
    return 0;
}

int vae_level_resnets_forward(const vae_exec *ex, vae_activations *acts, const vae_level *level)
{
    for (int j = 0; j < level->resnet_count; j++)
        if (resnet_stage(ex, acts, &level->resnets[j]) != 0) return -1;
    return 0;
}

int vae_mid_block_forward(const vae_exec *ex, vae_activations *acts, const vae_mid_block *mid)
{
    if (resnet_stage(ex, acts, &mid->resnets[0]) != 0) return -1;
    if (mid->has_attention) {
        tensor y = vae_activations_next(acts, acts->x.shape[0], acts->x.shape[1], acts->x.shape[2]);
        if (vae_attention_forward(ex, y, acts->x, &mid->attention) != 0) return -1;
        vae_activations_advance(acts, y);
    }
    return resnet_stage(ex, acts, &mid->resnets[1]);
}
