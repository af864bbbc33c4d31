/* Prompt-dependent conditioning of the transformer, computed once per prompt:
 *   t5    = caption_projection[N](prompt_embeds_t5)
 *   llama = caption_projection[b](prompt_embeds_llama3[llama_layers[b]]) for block b
 *   pooled = linear_2(silu(linear_1(pooled_prompt_embeds)))   (p_embedder)
 * See dit_forward.h. */
#include "dit/dit_forward.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>

/* y = x W^T for a host input: upload x into scratch, project into y. */
static int project_host(const dit_model *model, arena *scratch, tensor y, const float *x, int64_t rows, int64_t cols,
                        const dit_linear *layer)
{
    backend *be = model->be;
    arena_mark_t mark = arena_mark(scratch);
    tensor input = arena_tensor_2d(scratch, rows, cols);
    if (!input.data) return -1;
    be->ops->upload(be, input, x);
    be->ops->linear(be, y, input, layer->weight, layer->bias);
    arena_release(scratch, mark);
    return 0;
}

static int validate_inputs(const dit_config *cfg, const dit_text_inputs *in)
{
    if (in->t5_tokens < 1 || in->llama_tokens < 1)
        return error_set("prompt embeddings: t5 and llama3 embeds need at least one token each");
    for (int b = 0; b < dit_num_blocks(cfg); b++)
        if (cfg->llama_layers[b] >= in->llama_layers)
            return error_set("prompt embeddings: llama_layers[%d] = %d but prompt_embeds_llama3 has %lld layers", b,
                             cfg->llama_layers[b], (long long)in->llama_layers);
    return 0;
}

static int encode(dit_text *text, const dit_model *model, const dit_text_inputs *in, arena *scratch)
{
    const dit_config *cfg = &model->cfg;
    backend *be = model->be;
    int blocks = dit_num_blocks(cfg);
    int64_t c = cfg->dim;

    text->t5 = arena_tensor_2d(&text->storage, in->t5_tokens, c);
    text->pooled = arena_tensor_2d(&text->storage, 1, c);
    if (!text->t5.data || !text->pooled.data) return -1;
    if (project_host(model, scratch, text->t5, in->t5, in->t5_tokens, cfg->caption_channels_t5,
                     &model->caption_projection[blocks]))
        return -1;
    for (int b = 0; b < blocks; b++) {
        text->llama[b] = arena_tensor_2d(&text->storage, in->llama_tokens, c);
        if (!text->llama[b].data) return -1;
        const float *layer = in->llama + (int64_t)cfg->llama_layers[b] * in->llama_tokens * cfg->caption_channels_llama;
        if (project_host(model, scratch, text->llama[b], layer, in->llama_tokens, cfg->caption_channels_llama,
                         &model->caption_projection[b]))
            return -1;
    }
    tensor hidden = arena_tensor_2d(scratch, 1, c);
    if (!hidden.data) return -1;
    if (project_host(model, scratch, hidden, in->pooled, 1, cfg->text_emb_dim, &model->pooled_linear_1)) return -1;
    be->ops->silu(be, hidden, hidden);
    be->ops->linear(be, text->pooled, hidden, model->pooled_linear_2.weight, model->pooled_linear_2.bias);
    return 0;
}

int dit_text_encode(dit_text *text, const dit_model *model, const dit_text_inputs *inputs)
{
    memset(text, 0, sizeof *text);
    if (validate_inputs(&model->cfg, inputs)) return -1;
    arena_init(&text->storage, model->be);
    text->storage.name = "the transformer's text inputs";
    text->t5_tokens = inputs->t5_tokens;
    text->llama_tokens = inputs->llama_tokens;
    text->llama = calloc((size_t)dit_num_blocks(&model->cfg), sizeof(tensor));
    if (!text->llama) return error_set("out of memory encoding the prompt");
    arena scratch;
    arena_init(&scratch, model->be);
    scratch.name = "the transformer's text projections";
    int status = encode(text, model, inputs, &scratch);
    arena_free(&scratch);
    if (status) dit_text_free(text);
    return status;
}

void dit_text_free(dit_text *text)
{
    arena_free(&text->storage);
    free(text->llama);
    text->llama = NULL;
}
