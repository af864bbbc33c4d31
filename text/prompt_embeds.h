/* The transformer's text inputs for one prompt, from moedit's text encoder,
 * from HiDream's own four encoders (encoded beforehand, hidream_prompt.h)
 * or from a --prompt-embeds file.
 *
 * The file holds tensors named as diffusers' HiDreamImagePipeline arguments:
 *   prompt_embeds_t5 [L0, C0], prompt_embeds_llama3 [layers, L1, C1],
 *   pooled_prompt_embeds [P], and negative_prompt_embeds_t5,
 *   negative_prompt_embeds_llama3, negative_pooled_prompt_embeds for CFG.
 * A batch dimension of 1 ([1, L0, C0], [layers, 1, L1, C1], [1, P]) is
 * accepted too, as diffusers returns them. */
#ifndef MOEDIT_TEXT_PROMPT_EMBEDS_H
#define MOEDIT_TEXT_PROMPT_EMBEDS_H

#include "backend/arena.h"
#include "dit/dit_forward.h"
#include "text/hidream_prompt.h"
#include "text/text_conditioning.h"

typedef struct prompt_embeds {
    dit_text_inputs inputs; /* views of the arrays below */
    text_conditioning encoded;
    float *t5, *llama, *pooled; /* owned when read from a file */
} prompt_embeds;

int prompt_embeds_encode(prompt_embeds *out, const text_encoder *enc, const tokenizer *tok, const char *prompt,
                         arena *scratch);

/* Views of HiDream's encoded tensors (hidream_prompt.h), which stay owned
 * by `encoded`: out owns nothing. */
void prompt_embeds_view_hidream(prompt_embeds *out, const hidream_prompt_embeds *encoded);

/* negative 0: the prompt's tensors; 1: the negative_* ones. Checks channel
 * sizes against the transformer config. */
int prompt_embeds_read(prompt_embeds *out, const char *path, int negative, const dit_config *cfg);

void prompt_embeds_free(prompt_embeds *e);

#endif
