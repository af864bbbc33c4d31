/* Safetensors reader and writer: F32/I32 round trip through the writer,
 * the tensor-by-tensor writer giving the same bytes (and refusing a tensor
 * its header does not list), released pages read back alike,
 * F16/BF16/I64 conversion from hand-built files, sharded index loading,
 * directory lookup, and a clear error (naming the file) for every kind of
 * malformed file instead of a crash. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "core/tensor.h"
#include "tests/test_util.h"

static char temp_dir[] = "/tmp/moedit_test_safetensors_XXXXXX";

static const char *temp_path(const char *name)
{
    static char buf[8][512];
    static int next;
    char *path = buf[next++ % 8];
    snprintf(path, sizeof buf[0], "%s/%s", temp_dir, name);
    return path;
}

/* A file of: u64 header length, header text, then data. */
static void write_raw(const char *path, uint64_t header_len, const char *header, const void *data, size_t data_len)
{
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    uint8_t len_bytes[8];
    for (int i = 0; i < 8; i++) len_bytes[i] = (uint8_t)(header_len >> (8 * i));
    fwrite(len_bytes, 1, 8, fp);
    fwrite(header, 1, strlen(header), fp);
    if (data_len) fwrite(data, 1, data_len, fp);
    fclose(fp);
}

static void write_file(const char *name, const char *header, const void *data, size_t data_len)
{
    write_raw(temp_path(name), strlen(header), header, data, data_len);
}

static void write_text(const char *name, const char *text)
{
    FILE *fp = fopen(temp_path(name), "wb");
    if (fp) fputs(text, fp), fclose(fp);
}

/* rc is -1 and the message names `file` and contains `phrase`. */
static void check_error(int rc, const char *file, const char *phrase, const char *what)
{
    const char *msg = error_message();
    printf("  %-28s -> %s\n", what, msg);
    CHECK_MSG(rc == -1, "%s: expected failure, got %d", what, rc);
    CHECK_MSG(strstr(msg, file) != NULL, "%s: message does not name %s", what, file);
    CHECK_MSG(strstr(msg, phrase) != NULL, "%s: message lacks \"%s\"", what, phrase);
    error_clear();
}

static void check_open_fails(const char *name, const char *phrase)
{
    safetensors *st = (safetensors *)1;
    int rc = safetensors_open(&st, temp_path(name));
    CHECK_MSG(st == NULL, "%s: out not cleared on failure", name);
    check_error(rc, name, phrase, name);
}

static int dir_has_temp_files(void)
{
    DIR *d = opendir(temp_dir);
    int found = 0;
    for (struct dirent *e; d && (e = readdir(d));) found |= strstr(e->d_name, ".tmp.") != NULL || strncmp(e->d_name, ".moedit-", 8) == 0;
    if (d) closedir(d);
    return found;
}

static void test_round_trip_f32_i32(void)
{
    float weights[6] = {1.5f, -2.25f, 3e-8f, 1e30f, 0.0f, -0.0f};
    int32_t ids[4] = {7, -1, 2147483647, -2147483647 - 1};
    float scalar = 42.0f;
    tensor t[3] = {tensor_make_2d(DTYPE_F32, DEVICE_CPU, 2, 3), tensor_make(DTYPE_I32, DEVICE_CPU, 1, (int64_t[]){4}),
                   tensor_make(DTYPE_F32, DEVICE_CPU, 0, NULL)};
    t[0].data = weights;
    t[1].data = ids;
    t[2].data = &scalar;
    const char *names[3] = {"blocks.0.weight", "routing \"ids\"", "scale"};
    CHECK(safetensors_write(temp_path("round.safetensors"), names, t, 3) == 0);
    CHECK(!dir_has_temp_files());

    safetensors *st;
    CHECK(safetensors_open(&st, temp_path("round.safetensors")) == 0);
    if (!st) return;
    CHECK(safetensors_count(st) == 3);
    CHECK(strcmp(safetensors_entry_at(st, 1)->name, names[1]) == 0);
    const safetensors_entry *e = safetensors_find(st, "blocks.0.weight");
    CHECK(e && e->dtype == DTYPE_F32 && e->ndim == 2 && e->shape[0] == 2 && e->shape[1] == 3 && e->nbytes == 24);
    CHECK(e && strstr(e->file, "round.safetensors"));
    CHECK(safetensors_find(st, "absent") == NULL && error_message()[0] == '\0');
    float back[6];
    CHECK(safetensors_read_f32(st, "blocks.0.weight", 2, (int64_t[]){2, 3}, back) == 0);
    CHECK(memcmp(back, weights, sizeof back) == 0);
    int32_t ids_back[4];
    CHECK(safetensors_read_i32(st, names[1], 1, (int64_t[]){4}, ids_back) == 0);
    CHECK(memcmp(ids_back, ids, sizeof ids) == 0);
    float ids_as_f32[4];
    CHECK(safetensors_read_f32(st, names[1], 1, (int64_t[]){4}, ids_as_f32) == 0 && ids_as_f32[0] == 7.0f);
    float scalar_back = 0;
    CHECK(safetensors_read_f32(st, "scale", 0, NULL, &scalar_back) == 0 && scalar_back == 42.0f);

    check_error(safetensors_read_f32(st, "blocks.0.weight", 2, (int64_t[]){3, 2}, back), "round.safetensors",
                "has shape [2, 3], expected [3, 2]", "wrong shape in read_f32");
    check_error(safetensors_read_f32(st, "blocks.9.weight", 1, (int64_t[]){6}, back), "round.safetensors",
                "\"blocks.9.weight\" not found", "missing tensor");
    safetensors_close(st);
}

static void test_write_failures_leave_no_file(void)
{
    float x[2] = {1, 2};
    tensor t = tensor_make_2d(DTYPE_F32, DEVICE_CPU, 1, 2);
    t.data = x;
    const char *name = "x";
    check_error(safetensors_write(temp_path("no/such/dir.safetensors"), &name, &t, 1), "dir.safetensors",
                "No such file", "write into missing dir");
    const char *twice[2] = {"x", "x"};
    tensor pair[2] = {t, t};
    check_error(safetensors_write(temp_path("twice.safetensors"), twice, pair, 2), "twice.safetensors",
                "given twice", "duplicate names on write");
    CHECK(access(temp_path("twice.safetensors"), F_OK) != 0);
    CHECK(!dir_has_temp_files());
}

static long file_bytes(const char *path, char *buf, long size)
{
    FILE *f = fopen(path, "rb");
    long n = f ? (long)fread(buf, 1, (size_t)size, f) : -1;
    if (f) fclose(f);
    return n;
}

/* The streamed writer (header from shapes, then data tensor by tensor)
 * writes what safetensors_write wrote in test_round_trip_f32_i32. */
static void test_streamed_write(void)
{
    float weights[6] = {1.5f, -2.25f, 3e-8f, 1e30f, 0.0f, -0.0f}, scalar = 42.0f;
    int32_t ids[4] = {7, -1, 2147483647, -2147483647 - 1};
    tensor t[3] = {tensor_make_2d(DTYPE_F32, DEVICE_CPU, 2, 3), tensor_make(DTYPE_I32, DEVICE_CPU, 1, (int64_t[]){4}),
                   tensor_make(DTYPE_F32, DEVICE_CPU, 0, NULL)};
    const char *names[3] = {"blocks.0.weight", "routing \"ids\"", "scale"};
    safetensors_writer *w = NULL;
    CHECK(safetensors_writer_open(&w, temp_path("streamed.safetensors"), names, t, 3) == 0); /* no data yet */
    if (!w) return;
    void *data[3] = {weights, ids, &scalar};
    for (int i = 0; i < 3; i++) {
        t[i].data = data[i];
        CHECK(safetensors_writer_append(w, &t[i]) == 0);
    }
    CHECK(safetensors_writer_commit(w) == 0);
    static char whole[4096], streamed[4096];
    long n = file_bytes(temp_path("round.safetensors"), whole, sizeof whole);
    CHECK(n > 8 && n == file_bytes(temp_path("streamed.safetensors"), streamed, sizeof streamed));
    CHECK(n > 8 && memcmp(whole, streamed, (size_t)n) == 0);

    /* A tensor other than the header's next one, or too few, and nothing is left. */
    CHECK(safetensors_writer_open(&w, temp_path("short.safetensors"), names, t, 3) == 0);
    check_error(safetensors_writer_append(w, &t[1]), "short.safetensors", "is not the host tensor with data, dtype "
                "and shape its header lists", "streamed tensor out of order");
    CHECK(safetensors_writer_append(w, &t[0]) == 0);
    check_error(safetensors_writer_commit(w), "short.safetensors", "1 of the 3 tensors given", "streamed file cut short");
    CHECK(access(temp_path("short.safetensors"), F_OK) != 0);
    CHECK(!dir_has_temp_files());

    /* Released pages are dropped from memory, not from the file. */
    safetensors *st;
    CHECK(safetensors_open(&st, temp_path("streamed.safetensors")) == 0);
    if (!st) return;
    safetensors_release(safetensors_find(st, "blocks.0.weight"));
    float back[6];
    CHECK(safetensors_read_f32(st, "blocks.0.weight", 2, (int64_t[]){2, 3}, back) == 0);
    CHECK(memcmp(back, weights, sizeof back) == 0);
    safetensors_close(st);
}

/* F16 and BF16 data are converted exactly; the header is not padded, so the
 * data section starts unaligned. */
static void test_half_precision_conversion(void)
{
    const float f16_values[4] = {1.0f, -2.0f, 0.5f, 65504.0f};
    const float bf16_values[4] = {1.0f, -3.5f, 0.15625f, 256.0f};
    uint16_t data[8];
    for (int i = 0; i < 4; i++) data[i] = f32_to_f16(f16_values[i]), data[4 + i] = f32_to_bf16(bf16_values[i]);
    write_file("half.safetensors",
               "{\"__metadata__\":{\"format\":\"pt\"},"
               "\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[8,16]}}",
               data, sizeof data);
    safetensors *st;
    CHECK(safetensors_open(&st, temp_path("half.safetensors")) == 0);
    if (!st) return;
    CHECK(safetensors_count(st) == 2);
    CHECK(safetensors_find(st, "__metadata__") == NULL);
    CHECK(safetensors_find(st, "h")->dtype == DTYPE_F16 && safetensors_find(st, "b")->dtype == DTYPE_BF16);
    float out[4];
    CHECK(safetensors_read_f32(st, "h", 1, (int64_t[]){4}, out) == 0);
    CHECK(memcmp(out, f16_values, sizeof out) == 0);
    CHECK(safetensors_read_f32(st, "b", 2, (int64_t[]){2, 2}, out) == 0);
    CHECK(memcmp(out, bf16_values, sizeof out) == 0);
    safetensors_close(st);
}

/* Other dtypes of the format open, stay out of the entry list, and fail
 * with a clear message when read (I64 reads into int32 when it fits). */
static void test_other_dtypes(void)
{
    int64_t longs[3] = {5, -6, 1ll << 40};
    double doubles[1] = {0.5};
    uint8_t data[32];
    memcpy(data, longs, 24);
    memcpy(data + 24, doubles, 8);
    write_file("other.safetensors",
               "{\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},"
               "\"big\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[16,24]},"
               "\"d\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[24,32]}}",
               data, sizeof data);
    safetensors *st;
    CHECK(safetensors_open(&st, temp_path("other.safetensors")) == 0);
    if (!st) return;
    CHECK(safetensors_count(st) == 0 && safetensors_find(st, "d") == NULL);
    int32_t ids[2];
    CHECK(safetensors_read_i32(st, "ids", 1, (int64_t[]){2}, ids) == 0 && ids[0] == 5 && ids[1] == -6);
    check_error(safetensors_read_i32(st, "big", 1, (int64_t[]){1}, ids), "other.safetensors", "does not fit",
                "I64 out of int32 range");
    float f;
    check_error(safetensors_read_f32(st, "d", 1, (int64_t[]){1}, &f), "other.safetensors",
                "unsupported dtype F64 for tensor \"d\"", "unsupported dtype F64");
    safetensors_close(st);
}

static void write_shard(const char *name, const char *tensor_name, float value, int64_t n)
{
    float data[8];
    for (int i = 0; i < n; i++) data[i] = value + (float)i;
    tensor t = tensor_make(DTYPE_F32, DEVICE_CPU, 1, &n);
    t.data = data;
    CHECK(safetensors_write(temp_path(name), &tensor_name, &t, 1) == 0);
}

static void test_sharded_index(void)
{
    write_shard("model-00001-of-00002.safetensors", "a", 10, 3);
    write_shard("model-00002-of-00002.safetensors", "b", 20, 5);
    write_text("model.safetensors.index.json",
               "{\"metadata\": {\"total_size\": 32}, \"weight_map\": {"
               "\"a\": \"model-00001-of-00002.safetensors\", \"b\": \"model-00002-of-00002.safetensors\"}}");
    safetensors *st;
    CHECK(safetensors_open(&st, temp_path("model.safetensors.index.json")) == 0);
    if (st) {
        float a[3], b[5];
        CHECK(safetensors_count(st) == 2);
        CHECK(safetensors_read_f32(st, "a", 1, (int64_t[]){3}, a) == 0 && a[0] == 10 && a[2] == 12);
        CHECK(safetensors_read_f32(st, "b", 1, (int64_t[]){5}, b) == 0 && b[4] == 24);
        CHECK(strstr(safetensors_find(st, "b")->file, "model-00002-of-00002.safetensors") != NULL);
        check_error(safetensors_read_f32(st, "c", 1, (int64_t[]){3}, a), "model.safetensors.index.json", "not found",
                    "missing tensor in index");
        safetensors_close(st);
    }
    CHECK(safetensors_open_dir(&st, temp_dir, "model") == 0 && st && safetensors_count(st) == 2);
    safetensors_close(st);

    write_text("bad_map.safetensors.index.json",
               "{\"weight_map\": {\"a\": \"model-00002-of-00002.safetensors\", "
               "\"b\": \"model-00002-of-00002.safetensors\"}}");
    check_open_fails("bad_map.safetensors.index.json", "weight_map puts tensor \"a\"");
    write_text("dup.safetensors.index.json",
               "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", "
               "\"b\": \"model-00002-of-00002.safetensors\", \"x\": \"dup_a.safetensors\"}}");
    write_shard("dup_a.safetensors", "a", 0, 3);
    check_open_fails("dup.safetensors.index.json", "appears twice");
    write_text("gone.safetensors.index.json", "{\"weight_map\": {\"a\": \"gone-00001.safetensors\"}}");
    check_open_fails("gone.safetensors.index.json", "gone-00001.safetensors: cannot open");
    write_text("notindex.safetensors.index.json", "{\"weights\": {}}");
    check_open_fails("notindex.safetensors.index.json", "weight_map");
}

static void test_open_dir(void)
{
    char sub[600];
    snprintf(sub, sizeof sub, "%s/vae", temp_dir);
    CHECK(mkdir(sub, 0700) == 0);
    safetensors *st = NULL;
    check_error(safetensors_open_dir(&st, sub, "diffusion_pytorch_model"), "/vae",
                "no safetensors weights", "empty model directory");
    write_shard("vae/weights.safetensors", "w", 1, 2);
    CHECK(safetensors_open_dir(&st, sub, "diffusion_pytorch_model") == 0 && st && safetensors_count(st) == 1);
    safetensors_close(st);
    write_shard("vae/other.safetensors", "w", 1, 2);
    check_error(safetensors_open_dir(&st, sub, "diffusion_pytorch_model"), "/vae", "ambiguous",
                "two candidate files");
    unlink(temp_path("vae/weights.safetensors"));
    unlink(temp_path("vae/other.safetensors"));
    rmdir(sub);
}

static void test_malformed_files(void)
{
    float data[4] = {1, 2, 3, 4};
    const char *good = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";

    FILE *fp = fopen(temp_path("tiny.safetensors"), "wb");
    if (fp) fputs("abcd", fp), fclose(fp);
    check_open_fails("tiny.safetensors", "too short");
    write_file("cut.safetensors", good, data, 12);
    check_open_fails("cut.safetensors", "run past the data section");
    write_raw(temp_path("longhdr.safetensors"), 1000, good, data, 16);
    check_open_fails("longhdr.safetensors", "runs past the end of the file");
    write_raw(temp_path("hugehdr.safetensors"), 1ull << 40, good, data, 16);
    check_open_fails("hugehdr.safetensors", "absurd");
    write_raw(temp_path("maxhdr.safetensors"), UINT64_MAX, good, data, 16);
    check_open_fails("maxhdr.safetensors", "absurd");
    write_file("notjson.safetensors", "{\"w\": {\"dtype\": F32", data, 16);
    check_open_fails("notjson.safetensors", "not valid JSON");
    write_file("array.safetensors", "[1, 2, 3]", data, 16);
    check_open_fails("array.safetensors", "not a JSON object");

    static const struct {
        const char *file, *header, *phrase;
    } cases[] = {
        {"range.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[100],\"data_offsets\":[0,400]}}",
         "run past the data section"},
        {"backwards.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}",
         "end before they begin"},
        {"overlap.safetensors",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         "overlap"},
        {"contained.safetensors",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
         "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
         "overlap"},
        {"size.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}",
         "span 16 bytes but F32 shape [3] needs 12"},
        {"dtype.safetensors", "{\"w\":{\"dtype\":\"F33\",\"shape\":[4],\"data_offsets\":[0,16]}}",
         "unknown dtype \"F33\""},
        {"nodtype.safetensors", "{\"w\":{\"shape\":[4],\"data_offsets\":[0,16]}}", "\"dtype\""},
        {"strshape.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":\"4\",\"data_offsets\":[0,16]}}", "\"shape\""},
        {"nooffsets.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4]}}", "data_offsets"},
        {"entry.safetensors", "{\"w\":[1,2]}", "not an object"},
        {"negative.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}",
         "shape[0] is not a non-negative integer"},
        {"fraction.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,10]}}",
         "non-negative integer"},
        {"overflow.safetensors",
         "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,16]}}",
         "overflows"},
        {"huge.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,16]}}",
         "non-negative integer"},
        {"rank.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,4],\"data_offsets\":[0,16]}}",
         "5 dimensions"},
        {"negoffset.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[-16,0]}}",
         "data_offsets are not"},
        {"duplicate.safetensors",
         "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
         "appears twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(cases[i].file, cases[i].header, data, 16);
        check_open_fails(cases[i].file, cases[i].phrase);
    }
    check_open_fails("does_not_exist.safetensors", "cannot open");
}

static void remove_temp_dir(void)
{
    DIR *d = opendir(temp_dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] != '.') unlink(temp_path(e->d_name));
    if (d) closedir(d);
    rmdir(temp_dir);
}

int main(void)
{
    if (!mkdtemp(temp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip_f32_i32();
    test_write_failures_leave_no_file();
    test_streamed_write();
    test_half_precision_conversion();
    test_other_dtypes();
    test_sharded_index();
    test_open_dir();
    test_malformed_files();
    remove_temp_dir();
    return test_finish("test_safetensors");
}
