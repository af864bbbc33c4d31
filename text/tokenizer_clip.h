/* CLIP's tokenizer folder (vocab.json + merges.txt + tokenizer_config.json /
 * special_tokens_map.json, no tokenizer.json) as the tokenizer.json that
 * transformers 5's CLIPTokenizer builds in code. Internal to text/tokenizer.c. */
#ifndef MOEDIT_TEXT_TOKENIZER_CLIP_H
#define MOEDIT_TEXT_TOKENIZER_CLIP_H

#include "text/tokenizer_config.h"

#include <cjson/cJSON.h>

/* *root = the equivalent tokenizer.json object (caller deletes it). */
int tokenizer_clip_build(cJSON **root, const char *dir, const tokenizer_config *config);

#endif
