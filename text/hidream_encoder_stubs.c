/* Stand-ins for the parts of HiDream's text side that other branches bring
 * (see hidream_encoder_api.h): each fails with one line naming what this
 * build lacks. They vanish by themselves once the real headers exist; the
 * tokenizer loader is weak, so tokenizer.c's own tokenizer_load_dir wins as
 * soon as it has one, and until then tokenizer.json folders work. */
#include "text/hidream_encoder_api.h"

#include "core/error.h"

#include <stdio.h>
#include <sys/stat.h>

#ifdef HIDREAM_CLIP_ENCODER_MISSING
int clip_encoder_load(clip_encoder **out, const char *dir, backend *be)
{
    *out = NULL;
    return error_set("%s: this build has no CLIP text encoder (text/clip_encoder.c)", dir);
}
int clip_encoder_forward(clip_encoder *enc, arena *scratch, const int32_t *ids, int count, float *pooled)
{
    return error_set("this build has no CLIP text encoder (text/clip_encoder.c)");
}
int clip_encoder_projection_dim(const clip_encoder *enc) { return 0; }
void clip_encoder_free(clip_encoder *enc) {}
#endif

#ifdef HIDREAM_T5_ENCODER_MISSING
int t5_encoder_load(t5_encoder **out, const char *dir, backend *be)
{
    *out = NULL;
    return error_set("%s: this build has no T5 text encoder (text/t5_encoder.c)", dir);
}
int t5_encoder_forward(t5_encoder *enc, arena *scratch, const int32_t *ids, int count, const int32_t *attention_mask,
                       float *hidden)
{
    return error_set("this build has no T5 text encoder (text/t5_encoder.c)");
}
int t5_encoder_hidden_size(const t5_encoder *enc) { return 0; }
void t5_encoder_free(t5_encoder *enc) {}
#endif

__attribute__((weak)) int tokenizer_load_dir(tokenizer **out, const char *dir)
{
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (stat(path, &st) == 0) return tokenizer_load(out, path);
    *out = NULL;
    return error_set("%s: no tokenizer.json, and this build reads no vocab.json + merges.txt (CLIP) tokenizer", dir);
}
