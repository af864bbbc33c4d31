/* What the tokenizer fuzz targets do with a folder once its files are written:
 * load it as the pipelines do (tokenizer_load_dir) and, when it loads, encode a
 * few fixed strings (ASCII, accents, CJK, emoji, control bytes, special-token
 * look-alikes) and the input's own text, with and without truncation, and map
 * ids back to tokens. Shared by fuzz_tokenizer.c (tokenizer.json) and
 * fuzz_clip_tokenizer.c (vocab.json + merges.txt). */
#ifndef MOEDIT_TESTS_FUZZ_TOKENIZER_FOLDER_H
#define MOEDIT_TESTS_FUZZ_TOKENIZER_FOLDER_H

#include "tests/fuzz/fuzz_files.h"

#include "core/error.h"
#include "text/tokenizer.h"

static const char *const fuzz_fixed_texts[] = {
    "",
    "a photo of a cat",
    "Hello, World! 123 don't  stop",
    "A PHOTO, of   2 cats!! it's <|startoftext|> <|endoftext|>",
    "  l\xc3\xa9gumes \xef\xac\x81 \xe2\x91\xa0 x\xc2\xb2 ",
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xed\x95\x9c\xea\xb5\xad\xec\x96\xb4",
    "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9 \xf0\x9f\x87\xaf\xf0\x9f\x87\xb5",
    "tab\there\nnew\rline\x01",
    "<|endoftext|></s><s>[PAD]<unk> <|begin_of_text|>",
};

static inline void fuzz_encode(const tokenizer *tok, const char *text, size_t length)
{
    int32_t *ids = NULL;
    int count = 0;
    if (tokenizer_encode_all(tok, text, length, &ids, &count) == 0) {
        for (int i = 0; i < count; i++) (void)tokenizer_token(tok, ids[i]);
    }
    free(ids);
    if (memchr(text, 0, length)) return; /* the rest take C strings */
    int32_t few[8];
    (void)tokenizer_encode(tok, text, few, 8, &count);
    (void)tokenizer_count(tok, text, &count);
    char list[64];
    (void)tokenizer_unknown_words(tok, text, list, sizeof list, &count);
}

/* Loads the fuzz folder and exercises what loaded with the fixed texts and
 * text[0..size) (the input's remainder). */
static inline void fuzz_tokenizer_folder(const uint8_t *text_bytes, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return;
    memcpy(text, text_bytes, size);
    text[size] = 0;
    tokenizer *tok = NULL;
    if (tokenizer_load_dir(&tok, fuzz_folder_path()) == 0) {
        for (size_t i = 0; i < sizeof fuzz_fixed_texts / sizeof fuzz_fixed_texts[0]; i++)
            fuzz_encode(tok, fuzz_fixed_texts[i], strlen(fuzz_fixed_texts[i]));
        fuzz_encode(tok, text, size);
        int32_t vocab = tokenizer_vocab_size(tok);
        (void)tokenizer_token(tok, -1);
        (void)tokenizer_token(tok, vocab);
        (void)tokenizer_token(tok, vocab - 1);
        (void)tokenizer_token_id(tok, "<unk>");
        (void)tokenizer_num_special_tokens(tok);
        (void)tokenizer_pad_id(tok);
        (void)tokenizer_eos_id(tok);
        tokenizer_free(tok);
    }
    free(text);
    error_clear();
}

#endif
