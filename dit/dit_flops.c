/* FLOP count of one forward; see dit_flops.h. The token counts per stream
 * follow dit_forward.h: double blocks take queries for image + initial text
 * and keys for all text; single blocks the same over one stream. */
#include "dit/dit_flops.h"

static double matmul(double rows, double in, double out) { return 2.0 * rows * in * out; }

/* Feed-forward of `rows` image-stream tokens: shared + top-k experts + gate, or dense. */
static double image_ffn(const dit_config *cfg, double rows)
{
    double c = cfg->dim;
    if (!dit_is_moe(cfg)) return 3 * matmul(rows, c, (double)cfg->ffn_hidden);
    return matmul(rows, c, cfg->num_routed_experts) + 3 * matmul(rows, c, (double)cfg->shared_ffn_hidden) +
           cfg->num_activated_experts * 3 * matmul(rows, c, (double)cfg->ffn_hidden);
}

/* Projections, attention and output projection: `queries` rows attend to `keys` rows. */
static double attention(const dit_config *cfg, double queries, double keys)
{
    double c = cfg->dim;
    return matmul(queries, c, c) + 2 * matmul(keys, c, c) + 2 * matmul(queries, keys, c) + matmul(queries, c, c);
}

/* One block's work: double blocks keep the text feed-forward apart. */
static double block_flops(const dit_config *cfg, int is_double, double image, double kept, double all)
{
    double c = cfg->dim;
    if (is_double)
        return attention(cfg, kept, all) + image_ffn(cfg, image) + 3 * matmul(kept - image, c, (double)cfg->ffn_hidden);
    return attention(cfg, kept, all) + image_ffn(cfg, kept);
}

double dit_blocks_flops(const dit_config *cfg, int64_t image_tokens, int64_t t5_tokens, int64_t llama_tokens, int first,
                        int end)
{
    double image = (double)image_tokens, kept = image + (double)(t5_tokens + llama_tokens);
    double all = kept + (double)llama_tokens, sum = 0;
    for (int b = first; b < end; b++) sum += block_flops(cfg, b < cfg->num_double_blocks, image, kept, all);
    return sum;
}

double dit_forward_flops(const dit_config *cfg, int64_t image_tokens, int64_t t5_tokens, int64_t llama_tokens)
{
    double c = cfg->dim, p = cfg->patch_size, image = (double)image_tokens;
    double embed = matmul(image, cfg->in_channels * p * p, c) + matmul(image, c, cfg->out_channels * p * p);
    /* Caption projections run once per prompt, not per step: not counted. */
    return dit_blocks_flops(cfg, image_tokens, t5_tokens, llama_tokens, 0, dit_num_blocks(cfg)) + embed;
}
