/* The encoders and tokenizer loader HiDream's text side (hidream_prompt.c)
 * calls, whose implementations come from other branches:
 *   text/clip_encoder.h  CLIPTextModelWithProjection: ids -> text_embeds
 *   text/t5_encoder.h    T5EncoderModel: ids + attention mask -> last_hidden_state
 *   tokenizer_load_dir   text/tokenizer.h: a folder's tokenizer.json, or
 *                        vocab.json + merges.txt (CLIP)
 * Where a header is not in this tree yet, its prototypes are declared here
 * (the same declarations), and text/hidream_encoder_stubs.c answers each
 * call with one error line saying which part this build lacks. Once both
 * headers exist, this file only includes them. */
#ifndef MOEDIT_TEXT_HIDREAM_ENCODER_API_H
#define MOEDIT_TEXT_HIDREAM_ENCODER_API_H

#include "backend/arena.h"
#include "text/tokenizer.h"

#include <stdint.h>

#if __has_include("text/clip_encoder.h")
#include "text/clip_encoder.h"
#else
#define HIDREAM_CLIP_ENCODER_MISSING 1
typedef struct clip_encoder clip_encoder;
int clip_encoder_load(clip_encoder **out, const char *dir, backend *be);
/* pooled: host F32 [projection_dim]: text_embeds of ids[count] */
int clip_encoder_forward(clip_encoder *enc, arena *scratch, const int32_t *ids, int count, float *pooled);
int clip_encoder_projection_dim(const clip_encoder *enc);
void clip_encoder_free(clip_encoder *enc);
#endif

#if __has_include("text/t5_encoder.h")
#include "text/t5_encoder.h"
#else
#define HIDREAM_T5_ENCODER_MISSING 1
typedef struct t5_encoder t5_encoder;
int t5_encoder_load(t5_encoder **out, const char *dir, backend *be);
/* hidden: host F32 [count, d_model] */
int t5_encoder_forward(t5_encoder *enc, arena *scratch, const int32_t *ids, int count, const int32_t *attention_mask,
                       float *hidden);
int t5_encoder_hidden_size(const t5_encoder *enc);
void t5_encoder_free(t5_encoder *enc);
#endif

/* dir/tokenizer.json, or dir/vocab.json + dir/merges.txt. */
int tokenizer_load_dir(tokenizer **out, const char *dir);

#endif
