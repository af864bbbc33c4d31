/* Prompt -> HiDream conditioning tensors; see text_conditioning.h. */
#include "text/text_conditioning.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>

/* pooled[c] = mean over tokens of last[t, c], summed in double. */
static void mean_over_tokens(const float *last, int64_t tokens, int64_t channels, float *pooled)
{
    for (int64_t c = 0; c < channels; c++) {
        double sum = 0;
        for (int64_t t = 0; t < tokens; t++) sum += last[t * channels + c];
        pooled[c] = (float)(sum / (double)tokens);
    }
}

int text_conditioning_from_ids(text_conditioning *out, const text_encoder *enc, const int32_t *ids, int64_t tokens,
                               arena *scratch)
{
    memset(out, 0, sizeof *out);
    if (tokens < 1) return error_set("text conditioning: a prompt needs at least one token");
    int64_t layers = enc->cfg.num_layers, channels = enc->cfg.hidden_size, per_layer = tokens * channels;
    out->tokens = out->prompt_tokens = tokens;
    out->layers = layers;
    out->channels = channels;
    out->ids = malloc((size_t)tokens * sizeof(int32_t));
    out->hidden_states = malloc((size_t)((layers + 1) * per_layer) * sizeof(float));
    out->pooled = malloc((size_t)channels * sizeof(float));
    if (!out->ids || !out->hidden_states || !out->pooled) {
        text_conditioning_free(out);
        return error_set("out of memory: text conditioning for %lld tokens", (long long)tokens);
    }
    memcpy(out->ids, ids, (size_t)tokens * sizeof(int32_t));
    if (text_encoder_forward(enc, scratch, ids, tokens, out->hidden_states)) {
        text_conditioning_free(out);
        return -1;
    }
    out->llama = out->hidden_states + per_layer;
    out->t5 = out->hidden_states + layers * per_layer;
    mean_over_tokens(out->t5, tokens, channels, out->pooled);
    return 0;
}

int text_conditioning_encode(text_conditioning *out, const text_encoder *enc, const tokenizer *tok,
                             const char *prompt, int max_tokens, arena *scratch)
{
    memset(out, 0, sizeof *out);
    int full = 0, count = 0;
    if (max_tokens < 1) return error_set("text conditioning: max_tokens %d must be at least 1", max_tokens);
    if (tokenizer_count(tok, prompt, &full)) return -1;
    int32_t *ids = malloc((size_t)max_tokens * sizeof(int32_t));
    if (!ids) return error_set("out of memory tokenizing a prompt of up to %d tokens", max_tokens);
    if (tokenizer_encode(tok, prompt, ids, max_tokens, &count)) {
        free(ids);
        return -1;
    }
    if (count == 0) {
        free(ids);
        return error_set("%s: the prompt gives no tokens and the tokenizer adds no BOS token; give a non-empty prompt",
                         tokenizer_path(tok));
    }
    int status = text_conditioning_from_ids(out, enc, ids, count, scratch);
    free(ids);
    if (status) return error_prefix("prompt tokenized by %s", tokenizer_path(tok));
    out->prompt_tokens = full;
    return 0;
}

void text_conditioning_free(text_conditioning *c)
{
    free(c->ids);
    free(c->hidden_states);
    free(c->pooled);
    memset(c, 0, sizeof *c);
}
