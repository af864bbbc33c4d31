/* A digest of a model folder, so that ranks started on different machines
 * can tell whether they were given the same model under the same path.
 *
 * It covers the folder and its component folders one level down
 * (transformer/, vae/, scheduler/, the text encoders and tokenizers): every
 * regular file's name, every JSON file's bytes (configs, model_index.json,
 * shard indexes, tokenizer.json; up to 64 MiB each) and every other file's
 * size (the weights: reading them would cost as much as loading them).
 * Names are taken in sorted order. A missing or unreadable folder is part of
 * the digest, not an error: the loader names it later. */
#ifndef MOEDIT_PIPELINES_MODEL_DIGEST_H
#define MOEDIT_PIPELINES_MODEL_DIGEST_H

#include <stdint.h>

/* The digest of `dir` and how many files it covered. */
void model_digest(const char *dir, uint64_t *digest, int *files);

#endif
