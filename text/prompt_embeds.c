/* Prompt embeddings from the encoder or a file; see prompt_embeds.h. */
#include "text/prompt_embeds.h"

#include "core/error.h"
#include "io/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int prompt_embeds_encode(prompt_embeds *out, const text_encoder *enc, const tokenizer *tok, const char *prompt,
                         arena *scratch)
{
    memset(out, 0, sizeof *out);
    if (text_conditioning_encode(&out->encoded, enc, tok, prompt, TEXT_CONDITIONING_DEFAULT_MAX_TOKENS, scratch))
        return -1;
    const text_conditioning *c = &out->encoded;
    dit_text_inputs in = {c->t5, c->tokens, c->llama, c->layers, c->tokens, c->pooled};
    out->inputs = in;
    return 0;
}

void prompt_embeds_view_hidream(prompt_embeds *out, const hidream_prompt_embeds *e)
{
    memset(out, 0, sizeof *out);
    dit_text_inputs in = {e->t5, e->t5_tokens, e->llama, e->llama_layers, e->llama_tokens, e->pooled};
    out->inputs = in;
}

/* Reads `name` (with an optional batch dim of 1 at `batch_axis`) into a new
 * host array; shape receives the dims without the batch dim. */
static float *read_tensor(const safetensors *st, const char *path, const char *name, int ndim, int batch_axis,
                          int64_t *shape)
{
    const safetensors_entry *e = safetensors_require(st, name); /* absent, or of a dtype moedit does not read */
    if (!e) return NULL;
    int batched = e->ndim == ndim + 1 && e->shape[batch_axis] == 1;
    if (e->ndim != ndim && !batched) {
        error_set("%s: tensor %s has %d dimensions, expected %d", path, name, e->ndim, ndim);
        return NULL;
    }
    int64_t numel = 1;
    for (int d = 0, out = 0; d < e->ndim; d++) {
        if (batched && d == batch_axis) continue;
        shape[out++] = e->shape[d];
        numel *= e->shape[d];
    }
    if (numel <= 0) {
        error_set("%s: tensor %s is empty", path, name);
        return NULL;
    }
    float *data = malloc((size_t)numel * sizeof(float));
    if (!data || safetensors_read_f32(st, name, e->ndim, e->shape, data)) {
        if (!data) error_set("out of memory reading %s from %s", name, path);
        free(data);
        return NULL;
    }
    return data;
}

static int check_channels(const char *path, const char *name, int64_t got, int64_t want)
{
    if (got == want) return 0;
    return error_set("%s: %s has %lld channels but the transformer expects %lld", path, name, (long long)got,
                     (long long)want);
}

int prompt_embeds_read(prompt_embeds *out, const char *path, int negative, const dit_config *cfg)
{
    memset(out, 0, sizeof *out);
    safetensors *st = NULL;
    if (safetensors_open(&st, path)) return -1;
    const char *prefix = negative ? "negative_" : "";
    char t5_name[96], llama_name[96], pooled_name[96];
    snprintf(t5_name, sizeof t5_name, "%sprompt_embeds_t5", prefix);
    snprintf(llama_name, sizeof llama_name, "%sprompt_embeds_llama3", prefix);
    snprintf(pooled_name, sizeof pooled_name, "%spooled_prompt_embeds", negative ? "negative_" : "");
    int64_t t5_shape[3], llama_shape[4], pooled_shape[2];
    int status = -1;
    out->t5 = read_tensor(st, path, t5_name, 2, 0, t5_shape);
    if (out->t5) out->llama = read_tensor(st, path, llama_name, 3, 1, llama_shape);
    if (out->llama) out->pooled = read_tensor(st, path, pooled_name, 1, 0, pooled_shape);
    if (out->pooled && !check_channels(path, t5_name, t5_shape[1], cfg->caption_channels_t5) &&
        !check_channels(path, llama_name, llama_shape[2], cfg->caption_channels_llama) &&
        !check_channels(path, pooled_name, pooled_shape[0], cfg->text_emb_dim)) {
        dit_text_inputs in = {out->t5, t5_shape[0], out->llama, llama_shape[0], llama_shape[1], out->pooled};
        out->inputs = in;
        status = 0;
    }
    safetensors_close(st);
    if (status) prompt_embeds_free(out);
    return status;
}

void prompt_embeds_free(prompt_embeds *e)
{
    text_conditioning_free(&e->encoded);
    free(e->t5), free(e->llama), free(e->pooled);
    memset(e, 0, sizeof *e);
}
