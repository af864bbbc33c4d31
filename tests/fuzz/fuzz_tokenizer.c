/* Fuzz target: a tokenizer folder with a tokenizer.json (text/tokenizer*.c:
 * added tokens, normalizers incl. Precompiled, pre-tokenizers and their
 * PCRE2 patterns, WordLevel / BPE / Unigram models, templates, truncation).
 *
 * Input: tokenizer.json [FUZZ_SEPARATOR tokenizer_config.json
 * [FUZZ_SEPARATOR text]]. The folder is loaded as the pipelines load it
 * (tokenizer_load_dir); what loads encodes a few fixed strings (ASCII,
 * accents, CJK, emoji, control bytes, special-token look-alikes) and the
 * input's text, with and without truncation, and maps ids back to tokens.
 * No input may crash, read out of bounds or leak. */
#include "tests/fuzz/fuzz_files.h"

#include "core/error.h"
#include "text/tokenizer.h"

static const char *const fixed_texts[] = {
    "",
    "a photo of a cat",
    "Hello, World! 123 don't  stop",
    "  l\xc3\xa9gumes \xef\xac\x81 \xe2\x91\xa0 x\xc2\xb2 ",
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xed\x95\x9c\xea\xb5\xad\xec\x96\xb4",
    "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9 \xf0\x9f\x87\xaf\xf0\x9f\x87\xb5",
    "tab\there\nnew\rline\x01",
    "<|endoftext|></s><s>[PAD]<unk> <|begin_of_text|>",
};

static void encode(const tokenizer *tok, const char *text, size_t length)
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part;
    size_t length = fuzz_next_part(&data, &size, &part);
    fuzz_file_write("tokenizer.json", part, length);
    if (size) {
        length = fuzz_next_part(&data, &size, &part);
        fuzz_file_write("tokenizer_config.json", part, length);
    } else {
        fuzz_file_remove("tokenizer_config.json");
    }
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;

    tokenizer *tok = NULL;
    if (tokenizer_load_dir(&tok, fuzz_folder_path()) == 0) {
        for (size_t i = 0; i < sizeof fixed_texts / sizeof fixed_texts[0]; i++)
            encode(tok, fixed_texts[i], strlen(fixed_texts[i]));
        encode(tok, text, size);
        int32_t vocab = tokenizer_vocab_size(tok);
        (void)tokenizer_token(tok, -1);
        (void)tokenizer_token(tok, vocab);
        (void)tokenizer_token(tok, vocab - 1);
        (void)tokenizer_token_id(tok, "<unk>");
        (void)tokenizer_num_special_tokens(tok);
        tokenizer_free(tok);
    }
    free(text);
    error_clear();
    return 0;
}
