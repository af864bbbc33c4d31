/* Fuzz target: a tokenizer folder with a tokenizer.json (text/tokenizer*.c:
 * added tokens, normalizers incl. Precompiled, pre-tokenizers and their
 * PCRE2 patterns, WordLevel / BPE / Unigram models, templates, truncation).
 *
 * Input: tokenizer.json [FUZZ_SEPARATOR tokenizer_config.json
 * [FUZZ_SEPARATOR text]]; what loads is exercised by fuzz_tokenizer_folder.
 * No input may crash, read out of bounds or leak. */
#include "tests/fuzz/fuzz_tokenizer_folder.h"

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
    fuzz_tokenizer_folder(data, size);
    return 0;
}
