/* Fuzz target: CLIP's tokenizer folder without a tokenizer.json
 * (text/tokenizer_clip.c builds the pipeline from vocab.json + merges.txt,
 * text/tokenizer_config.c reads tokenizer_config.json's special tokens).
 *
 * Input: vocab.json FUZZ_SEPARATOR merges.txt [FUZZ_SEPARATOR
 * tokenizer_config.json [FUZZ_SEPARATOR text]]; what loads is exercised by
 * fuzz_tokenizer_folder. No input may crash, read out of bounds or leak. */
#include "tests/fuzz/fuzz_tokenizer_folder.h"

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
    fuzz_tokenizer_folder(data, size);
    return 0;
}
