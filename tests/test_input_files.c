/* Proves that damaged or hostile inputs are refused with one clear error:
 * a safetensors index that names a shard outside its folder (../../etc/passwd,
 * a sub/ path, an absolute path) before any shard is opened; a tensor of a
 * dtype moedit does not read (U8 embeddings) named with its dtype rather than
 * reported missing; and a FIFO as a weights file, config or image refused at
 * once instead of blocking forever in open(). */
#define _GNU_SOURCE
#include "core/error.h"
#include "core/text_file.h"
#include "io/image_io.h"
#include "io/safetensors.h"
#include "test_scratch_dir.h"
#include "test_util.h"

#include <dirent.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void write_file(const char *name, const void *bytes, size_t n)
{
    FILE *f = fopen(scratch_path(name), "wb");
    CHECK(f && fwrite(bytes, 1, n, f) == n);
    if (f) fclose(f);
}

/* A one-tensor safetensors file of `dtype` with 8 bytes of data. */
static void write_tensor_file(const char *name, const char *tensor, const char *dtype, int64_t count)
{
    char header[256];
    int n = snprintf(header, sizeof header, "{\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld],\"data_offsets\":[0,8]}}",
                     tensor, dtype, (long long)count);
    while (n % 8) header[n++] = ' ';
    uint8_t bytes[8 + 256 + 8] = {0};
    for (int i = 0; i < 8; i++) bytes[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(bytes + 8, header, (size_t)n);
    write_file(name, bytes, 8 + (size_t)n + 8);
}

static void test_unsupported_dtype(void)
{
    write_tensor_file("u8.safetensors", "prompt_embeds_t5", "U8", 8);
    safetensors *st = NULL;
    CHECK(safetensors_open(&st, scratch_path("u8.safetensors")) == 0);
    if (!st) return;
    CHECK(safetensors_find(st, "prompt_embeds_t5") == NULL);
    CHECK(safetensors_dtype_of(st, "prompt_embeds_t5") && !strcmp(safetensors_dtype_of(st, "prompt_embeds_t5"), "U8"));
    CHECK(safetensors_require(st, "prompt_embeds_t5") == NULL);
    printf("  %-10s -> %s\n", "U8 tensor", error_message());
    CHECK(strstr(error_message(), "\"prompt_embeds_t5\" has dtype U8"));
    CHECK(safetensors_require(st, "latents") == NULL && strstr(error_message(), "no tensor \"latents\""));
    safetensors_close(st);
    scratch_empty();
}

static void test_shard_outside_folder(void)
{
    write_tensor_file("shard.safetensors", "w", "F32", 2);
    const char *names[] = {"../../../etc/passwd", "sub/shard.safetensors", "..", "/etc/passwd"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char index[256];
        int n = snprintf(index, sizeof index, "{\"weight_map\":{\"w\":\"shard.safetensors\",\"v\":\"%s\"}}", names[i]);
        write_file("model.safetensors.index.json", index, (size_t)n);
        safetensors *st = NULL;
        int rc = safetensors_open(&st, scratch_path("model.safetensors.index.json"));
        printf("  %-10s -> %s\n", "shard name", error_message());
        CHECK_MSG(rc == -1 && strstr(error_message(), "a shard must be a plain file name"), "%s accepted", names[i]);
        safetensors_close(st);
    }
    scratch_empty();
}

static void test_fifo_inputs(void)
{
    CHECK(mkfifo(scratch_path("fifo.safetensors"), 0600) == 0);
    alarm(20); /* a blocked open would hang the test: SIGALRM ends it instead */
    safetensors *st = NULL;
    CHECK(safetensors_open(&st, scratch_path("fifo.safetensors")) == -1 && strstr(error_message(), "FIFO"));
    printf("  %-10s -> %s\n", "FIFO", error_message());
    char *text = NULL;
    CHECK(text_file_read(scratch_path("fifo.safetensors"), 1 << 20, "config", &text) == -1 && strstr(error_message(), "FIFO"));
    uint8_t *rgb = NULL;
    int64_t w, h;
    CHECK(image_read(scratch_path("fifo.safetensors"), 1024, 1 << 20, &rgb, &w, &h) == -1 && strstr(error_message(), "FIFO"));
    alarm(0);
    scratch_empty();
}

int main(void)
{
    if (scratch_make("/tmp/moedit_input_files_XXXXXX")) return 1;
    test_unsupported_dtype();
    test_shard_outside_folder();
    test_fifo_inputs();
    scratch_remove();
    return test_finish("test_input_files");
}
