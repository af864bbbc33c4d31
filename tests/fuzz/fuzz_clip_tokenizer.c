/* Fuzz target: CLIP's tokenizer folder without a tokenizer.json
 * (text/tokenizer_clip.c builds the pipeline from vocab.json + merges.txt,
 * text/tokenizer_config.c reads tokenizer_config.json's special tokens).
 *
 * Input: vocab.json FUZZ_SEPARATOR merges.txt [FUZZ_SEPARATOR
 * tokenizer_config.json [FUZZ_SEPARATOR text]]. What loads encodes a few
 * fixed strings and the input's text. No input may crash, read out of bounds
 * or leak. */
#include "tests/fuzz/fuzz_files.h"

#include "core/error.h"
#include "text/tokenizer.h"

static const char *const fixed_texts[] = {
    "",
    "a photo of a cat",
    "A PHOTO, of   2 cats!! it's <|startoftext|> <|endoftext|>",
    "l\xc3\xa9gumes \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80\ttab",
};

static void encode(const tokenizer *tok, const char *text, size_t length)
{
    int32_t *ids = NULL;
    int count = 0;
    if (tokenizer_encode_all(tok, text, length, &ids, &count) == 0) {
        for (int i = 0; i < count; i++) (void)tokenizer_token(tok, ids[i]);
    }
    free(ids);
    int32_t few[77];
    if (!memchr(text, 0, length)) (void)tokenizer_encode(tok, text, few, 77, &count);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"vocab.json", "merges.txt", "tokenizer_config.json"};
    for (int i = 0; i < 3; i++) {
        const uint8_t *part;
        if (i == 2 && !size) {
            fuzz_file_remove(names[i]);
            break;
        }
        size_t length = fuzz_next_part(&data, &size, &part);
        fuzz_file_write(names[i], part, length);
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
        (void)tokenizer_pad_id(tok);
        (void)tokenizer_eos_id(tok);
        tokenizer_free(tok);
    }
    free(text);
    error_clear();
    return 0;
}
