/* Safetensors reader (mmap, validated) and atomic writer, whole or tensor by
 * tensor; see safetensors.h.
 *
 * Reading one file: map it, check the header length against the file size,
 * parse the header with cJSON, and for each tensor check dtype, shape (at most
 * TENSOR_MAX_DIMS, no overflow), data_offsets (inside the data section,
 * end - begin == numel * dtype size) and that no two tensors overlap. Only
 * then do entries point into the mapping. Data are little endian on disk and
 * are read with memcpy, since offsets need not be aligned. */
#define _POSIX_C_SOURCE 200809L /* mmap, O_CLOEXEC, fileno, strdup */
#define _DEFAULT_SOURCE         /* madvise */
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/file_open.h"
#include "core/float8.h"
#include "io/temp_file.h"

#define SAFETENSORS_MAX_HEADER (100u << 20) /* 100 MiB: larger is not a header */
#define JSON_MAX_EXACT_INT 9007199254740992.0 /* 2^53 */

/* Every dtype of the format whose element size is whole bytes. The first
 * SUPPORTED_DTYPES are in the order of the tensor_dtype enum. */
#define SUPPORTED_DTYPES 6
static const struct {
    const char *name;
    size_t size;
} dtype_table[] = {
    {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I32", 4}, {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"F64", 8},     {"I64", 8},
    {"U64", 8}, {"U32", 4}, {"I16", 2},  {"U16", 2}, {"I8", 1},      {"U8", 1},      {"BOOL", 1}, {"F8_E8M0", 1},
};

typedef struct st_file { char *path; void *map; size_t map_size; } st_file;

/* One tensor of any dtype; entry.dtype is meaningful only when supported. */
typedef struct st_record {
    safetensors_entry entry;
    const char *dtype_name;
    int supported;
    int entry_index; /* into safetensors.entries, or -1 */
} st_record;

struct safetensors {
    char *path;
    st_file *files;
    int file_count;
    st_record *records;
    int record_count, record_capacity;
    safetensors_entry *entries; /* the supported records, in order */
    int count;
    st_record **sorted; /* all records by name */
};

static const char *shape_string(int ndim, const int64_t *shape, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
    return buf;
}

/* A JSON number that is a whole number in [0, 2^53]. */
static int json_to_u64(const cJSON *item, uint64_t *out)
{
    if (!cJSON_IsNumber(item)) return -1;
    double v = item->valuedouble;
    if (!(v >= 0 && v <= JSON_MAX_EXACT_INT) || v != floor(v)) return -1;
    *out = (uint64_t)v;
    return 0;
}

static int add_record(safetensors *st, const st_record *record)
{
    if (st->record_count == st->record_capacity) {
        int grown = st->record_capacity ? st->record_capacity * 2 : 64;
        st_record *records = realloc(st->records, (size_t)grown * sizeof *records);
        if (!records) return error_set("out of memory reading %s", record->entry.file);
        st->records = records;
        st->record_capacity = grown;
    }
    st->records[st->record_count++] = *record;
    return 0;
}

/* Fill `record` from one header item; the error names file and tensor. */
static int parse_entry(const cJSON *item, const char *file, const uint8_t *data, uint64_t data_size,
                       st_record *record)
{
    uint64_t begin, end;
    const char *name = item->string;
    if (!cJSON_IsObject(item)) return error_set("%s: tensor \"%s\": header entry is not an object", file, name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dtype)) return error_set("%s: tensor \"%s\": missing or non-string \"dtype\"", file, name);
    if (!cJSON_IsArray(shape)) return error_set("%s: tensor \"%s\": missing or non-array \"shape\"", file, name);
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2)
        return error_set("%s: tensor \"%s\": \"data_offsets\" must be an array [begin, end]", file, name);

    memset(record, 0, sizeof *record);
    record->entry_index = -1;
    size_t elem = 0;
    for (size_t i = 0; i < sizeof dtype_table / sizeof dtype_table[0]; i++)
        if (strcmp(dtype->valuestring, dtype_table[i].name) == 0) {
            record->dtype_name = dtype_table[i].name;
            record->supported = i < SUPPORTED_DTYPES;
            record->entry.dtype = record->supported ? (tensor_dtype)i : DTYPE_F32;
            elem = dtype_table[i].size;
        }
    if (!elem) return error_set("%s: tensor \"%s\": unknown dtype \"%s\"", file, name, dtype->valuestring);

    int ndim = cJSON_GetArraySize(shape);
    if (ndim > TENSOR_MAX_DIMS)
        return error_set("%s: tensor \"%s\" has %d dimensions; at most %d are supported", file, name, ndim,
                         TENSOR_MAX_DIMS);
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        uint64_t dim;
        if (json_to_u64(cJSON_GetArrayItem(shape, i), &dim) != 0)
            return error_set("%s: tensor \"%s\": shape[%d] is not a non-negative integer", file, name, i);
        if (dim != 0 && numel > (uint64_t)INT64_MAX / dim)
            return error_set("%s: tensor \"%s\": shape overflows", file, name);
        numel *= dim;
        record->entry.shape[i] = (int64_t)dim;
    }
    if (numel > (uint64_t)INT64_MAX / elem) return error_set("%s: tensor \"%s\": shape overflows", file, name);
    uint64_t nbytes = numel * elem;

    if (json_to_u64(cJSON_GetArrayItem(offsets, 0), &begin) != 0 ||
        json_to_u64(cJSON_GetArrayItem(offsets, 1), &end) != 0)
        return error_set("%s: tensor \"%s\": data_offsets are not non-negative integers", file, name);
    if (end < begin)
        return error_set("%s: tensor \"%s\": data_offsets [%llu, %llu] end before they begin", file, name,
                         (unsigned long long)begin, (unsigned long long)end);
    if (end > data_size)
        return error_set("%s: tensor \"%s\": data_offsets [%llu, %llu] run past the data section (%llu bytes); "
                         "truncated file?", file, name, (unsigned long long)begin, (unsigned long long)end,
                         (unsigned long long)data_size);
    if (end - begin != nbytes) {
        char buf[128];
        return error_set("%s: tensor \"%s\": data_offsets span %llu bytes but %s shape %s needs %llu", file, name,
                         (unsigned long long)(end - begin), record->dtype_name,
                         shape_string(ndim, record->entry.shape, buf, sizeof buf), (unsigned long long)nbytes);
    }
    record->entry.ndim = ndim;
    record->entry.data = data + begin;
    record->entry.nbytes = (size_t)nbytes;
    record->entry.file = file;
    return 0;
}

static int compare_by_data(const void *a, const void *b)
{
    const st_record *x = *(st_record *const *)a, *y = *(st_record *const *)b;
    const char *p = x->entry.data, *q = y->entry.data;
    return p < q ? -1 : p > q;
}

/* Records [first, st->record_count) lie in one file: no two may share bytes. */
static int check_overlaps(const safetensors *st, int first, const char *file)
{
    int n = st->record_count - first;
    st_record **order = malloc((size_t)(n ? n : 1) * sizeof *order);
    if (!order) return error_set("out of memory reading %s", file);
    for (int i = 0; i < n; i++) order[i] = &st->records[first + i];
    qsort(order, (size_t)n, sizeof *order, compare_by_data);
    int rc = 0;
    const safetensors_entry *last = NULL; /* the non-empty tensor that ends furthest */
    for (int i = 0; i < n && rc == 0; i++) {
        const safetensors_entry *cur = &order[i]->entry;
        if (cur->nbytes == 0) continue;
        const char *last_end = last ? (const char *)last->data + last->nbytes : NULL;
        if (last && (const char *)cur->data < last_end)
            rc = error_set("%s: tensors \"%s\" and \"%s\" overlap in the data section", file, last->name, cur->name);
        if (!last || (const char *)cur->data + cur->nbytes > last_end) last = cur;
    }
    free(order);
    return rc;
}

/* Map a whole file read-only; the error names it. */
static int map_file(const char *path, void **map, size_t *size)
{
    struct stat info;
    int fd;
    const char *why = file_open_regular(path, &fd, &info);
    if (why) return error_set("%s: cannot open: %s", path, why);
    int rc = 0;
    if (info.st_size < 8)
        rc = error_set("%s: file is %lld bytes, too short (truncated?)", path, (long long)info.st_size);
    void *mapped = rc == 0 ? mmap(NULL, (size_t)info.st_size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    if (mapped == MAP_FAILED) rc = error_set("%s: cannot map: %s", path, strerror(errno));
    close(fd);
    if (rc == 0) *map = mapped, *size = (size_t)info.st_size;
    return rc;
}

/* cJSON of len bytes of text that need not end in NUL; NULL on malformed
 * JSON, with *error_at the byte offset where parsing stopped. */
static cJSON *parse_json(const void *bytes, size_t len, long *error_at)
{
    char *text = malloc(len + 1);
    if (!text) return NULL;
    memcpy(text, bytes, len);
    text[len] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1); /* the length counts the NUL */
    *error_at = end ? (long)(end - text) : 0;
    free(text);
    return root;
}

/* Map one .safetensors file, validate its header, append its tensors. */
static int load_file(safetensors *st, const char *path)
{
    st_file *files = realloc(st->files, (size_t)(st->file_count + 1) * sizeof *files);
    if (!files) return error_set("out of memory opening %s", path);
    st->files = files;
    st_file *f = &st->files[st->file_count];
    memset(f, 0, sizeof *f);
    if (!(f->path = strdup(path))) return error_set("out of memory opening %s", path);
    st->file_count++;
    if (map_file(path, &f->map, &f->map_size) != 0) return -1;

    const uint8_t *bytes = f->map;
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--) header_len = header_len << 8 | bytes[i];
    if (header_len > SAFETENSORS_MAX_HEADER)
        return error_set("%s: header length %llu is absurd (over 100 MiB); not a safetensors file?", path,
                         (unsigned long long)header_len);
    if (header_len > f->map_size - 8)
        return error_set("%s: header length %llu runs past the end of the file (%zu bytes); truncated?", path,
                         (unsigned long long)header_len, f->map_size);
    long error_at;
    cJSON *root = parse_json(bytes + 8, (size_t)header_len, &error_at);
    if (!root) return error_set("%s: header is not valid JSON (error near byte %ld of the header)", path, error_at);
    int rc = cJSON_IsObject(root) ? 0 : error_set("%s: header is not a JSON object", path);

    const uint8_t *data = bytes + 8 + header_len;
    uint64_t data_size = f->map_size - 8 - header_len;
    int first = st->record_count;
    for (const cJSON *item = root->child; item && rc == 0; item = item->next) {
        if (strcmp(item->string, "__metadata__") == 0) continue;
        st_record record;
        rc = parse_entry(item, f->path, data, data_size, &record);
        if (rc == 0 && !(record.entry.name = strdup(item->string))) rc = error_set("out of memory");
        if (rc == 0 && add_record(st, &record) != 0) {
            free((char *)record.entry.name);
            rc = -1;
        }
    }
    cJSON_Delete(root);
    return rc == 0 ? check_overlaps(st, first, f->path) : -1;
}

#define PATH_BUFFER 4096

/* The shard `name` beside the index, into buf (PATH_BUFFER bytes). */
static int sibling_path(char *buf, const char *index_path, const char *name)
{
    const char *slash = strrchr(index_path, '/');
    int n = slash ? snprintf(buf, PATH_BUFFER, "%.*s/%s", (int)(slash - index_path), index_path, name)
                  : snprintf(buf, PATH_BUFFER, "%s", name);
    return n > 0 && n < PATH_BUFFER ? 0 : error_set("%s: path of shard %s is too long", index_path, name);
}

/* A shard is a plain file name in the index's folder: no directory part, not
 * "." or "..", so an index cannot make the loader open files elsewhere. */
static int check_shard_name(const char *index_path, const char *tensor, const char *name)
{
    if (!strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0) return 0;
    return error_set("%s: weight_map puts tensor \"%s\" in \"%s\": a shard must be a plain file name in the "
                     "index's folder", index_path, tensor, name);
}

/* After loading: the entry list, the sorted index, and no duplicate names. */
static int compare_records(const void *a, const void *b)
{
    return strcmp((*(st_record *const *)a)->entry.name, (*(st_record *const *)b)->entry.name);
}

static int build_index(safetensors *st)
{
    size_t n = (size_t)st->record_count;
    st->entries = malloc((n ? n : 1) * sizeof *st->entries);
    st->sorted = malloc((n ? n : 1) * sizeof *st->sorted);
    if (!st->entries || !st->sorted) return error_set("out of memory opening %s", st->path);
    for (size_t i = 0; i < n; i++) {
        st_record *r = &st->records[i];
        st->sorted[i] = r;
        if (!r->supported) continue;
        r->entry_index = st->count;
        st->entries[st->count++] = r->entry;
    }
    qsort(st->sorted, n, sizeof *st->sorted, compare_records);
    for (size_t i = 1; i < n; i++)
        if (strcmp(st->sorted[i]->entry.name, st->sorted[i - 1]->entry.name) == 0)
            return error_set("%s: tensor \"%s\" appears twice (in %s and %s)", st->path, st->sorted[i]->entry.name,
                             st->sorted[i - 1]->entry.file, st->sorted[i]->entry.file);
    return 0;
}

static st_record *find_record(const safetensors *st, const char *name)
{
    int lo = 0, hi = st->record_count - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(name, st->sorted[mid]->entry.name);
        if (c == 0) return st->sorted[mid];
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

/* Every shard named by the index, each once; then every name in the
 * weight_map must be in the shard it names. */
static int load_index(safetensors *st, const char *path)
{
    void *bytes;
    size_t size;
    long error_at;
    if (map_file(path, &bytes, &size) != 0) return -1;
    cJSON *root = parse_json(bytes, size, &error_at);
    munmap(bytes, size);
    if (!root) return error_set("%s: index is not valid JSON (error near byte %ld)", path, error_at);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    int rc = cJSON_IsObject(map) && map->child ? 0 : error_set("%s: no \"weight_map\" object with entries", path);
    for (const cJSON *item = rc == 0 ? map->child : NULL; item && rc == 0; item = item->next)
        if (cJSON_IsString(item) && check_shard_name(path, item->string, item->valuestring) != 0) rc = -1;
    char shard[PATH_BUFFER];
    for (const cJSON *item = rc == 0 ? map->child : NULL; item && rc == 0; item = item->next) {
        if (!cJSON_IsString(item) || !item->valuestring[0])
            rc = error_set("%s: weight_map entry \"%s\" is not a file name", path, item->string);
        else if (sibling_path(shard, path, item->valuestring) != 0) rc = -1;
        int seen = 0;
        for (int i = 0; rc == 0 && i < st->file_count; i++) seen |= strcmp(st->files[i].path, shard) == 0;
        if (rc == 0 && !seen && load_file(st, shard) != 0) rc = error_prefix("%s: loading shard", path);
    }
    if (rc == 0) rc = build_index(st);
    for (const cJSON *item = rc == 0 ? map->child : NULL; item && rc == 0; item = item->next) {
        const st_record *r = find_record(st, item->string);
        if (sibling_path(shard, path, item->valuestring) != 0) rc = -1;
        else if (!r || strcmp(r->entry.file, shard) != 0)
            rc = error_set("%s: weight_map puts tensor \"%s\" in %s, but it is not there", path, item->string,
                           shard);
    }
    cJSON_Delete(root);
    return rc;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int safetensors_open(safetensors **out, const char *path)
{
    *out = NULL;
    safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        free(st);
        return error_set("out of memory opening %s", path);
    }
    int rc = has_suffix(path, ".json") ? load_index(st, path) : load_file(st, path) == 0 ? build_index(st) : -1;
    if (rc != 0) {
        safetensors_close(st);
        return -1;
    }
    *out = st;
    return 0;
}

/* The only *.safetensors file in dir, or an error that says why not. */
static int open_only_file(safetensors **out, const char *dir, const char *stem)
{
    DIR *d = opendir(dir);
    if (!d) return error_set("%s: cannot open directory: %s", dir, strerror(errno));
    char path[PATH_BUFFER] = "";
    int matches = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.' && has_suffix(e->d_name, ".safetensors") && ++matches == 1)
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    closedir(d);
    if (!stem) stem = "<stem>";
    if (matches != 1)
        return error_set("%s: %s safetensors weights (looked for %s.safetensors, %s.safetensors.index.json, "
                         "then the only *.safetensors)", dir, matches ? "ambiguous" : "no", stem, stem);
    return safetensors_open(out, path);
}

int safetensors_open_dir(safetensors **out, const char *dir, const char *stem)
{
    *out = NULL;
    const char *suffixes[] = {".safetensors", ".safetensors.index.json"};
    for (int i = 0; stem && i < 2; i++) {
        char path[PATH_BUFFER];
        struct stat info;
        int n = snprintf(path, sizeof path, "%s/%s%s", dir, stem, suffixes[i]);
        if (n < 0 || n >= (int)sizeof path) return error_set("%s: path too long", dir);
        if (stat(path, &info) == 0 && S_ISREG(info.st_mode)) return safetensors_open(out, path);
    }
    return open_only_file(out, dir, stem);
}

void safetensors_close(safetensors *st)
{
    if (!st) return;
    for (int i = 0; i < st->record_count; i++) free((char *)st->records[i].entry.name);
    for (int i = 0; i < st->file_count; i++) {
        if (st->files[i].map) munmap(st->files[i].map, st->files[i].map_size);
        free(st->files[i].path);
    }
    free(st->files);
    free(st->records);
    free(st->entries);
    free(st->sorted);
    free(st->path);
    free(st);
}

const char *safetensors_path(const safetensors *st) { return st->path; }

int safetensors_count(const safetensors *st) { return st->count; }

const safetensors_entry *safetensors_entry_at(const safetensors *st, int i)
{
    return i >= 0 && i < st->count ? &st->entries[i] : NULL;
}

const safetensors_entry *safetensors_find(const safetensors *st, const char *name)
{
    const st_record *r = find_record(st, name);
    return r && r->supported ? &st->entries[r->entry_index] : NULL;
}

const char *safetensors_dtype_of(const safetensors *st, const char *name)
{
    const st_record *r = find_record(st, name);
    return r ? r->dtype_name : NULL;
}

const safetensors_entry *safetensors_require(const safetensors *st, const char *name)
{
    const st_record *r = find_record(st, name);
    if (!r) error_set("%s: no tensor \"%s\"", st->path, name);
    else if (!r->supported)
        error_set("%s: tensor \"%s\" has dtype %s, which moedit does not read (F32, F16, BF16, I32, F8_E4M3 or F8_E5M2)",
                  r->entry.file, name, r->dtype_name);
    return r && r->supported ? &st->entries[r->entry_index] : NULL;
}

/* The record for name with the expected shape, or an error. */
static const st_record *lookup_checked(const safetensors *st, const char *name, int ndim, const int64_t *shape)
{
    const st_record *r = find_record(st, name);
    if (!r) {
        error_set("tensor \"%s\" not found in %s", name, st->path);
        return NULL;
    }
    int same = r->entry.ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = r->entry.shape[i] == shape[i];
    if (!same) {
        char got[128], want[128];
        error_set("tensor \"%s\" in %s has shape %s, expected %s", name, r->entry.file,
                  shape_string(r->entry.ndim, r->entry.shape, got, sizeof got),
                  shape_string(ndim, shape, want, sizeof want));
        return NULL;
    }
    return r;
}

int safetensors_read_f32(const safetensors *st, const char *name, int ndim, const int64_t *shape, float *dst)
{
    const st_record *r = lookup_checked(st, name, ndim, shape);
    if (!r) return -1;
    if (!r->supported)
        return error_set("unsupported dtype %s for tensor \"%s\" in %s", r->dtype_name, name, r->entry.file);
    const uint8_t *src = r->entry.data;
    size_t elem = dtype_size(r->entry.dtype);
    int64_t n = (int64_t)(r->entry.nbytes / elem);
    if (r->entry.dtype == DTYPE_F32) {
        if (n) memcpy(dst, src, r->entry.nbytes);
        return 0;
    }
    tensor_dtype dtype = r->entry.dtype;
#pragma omp parallel for schedule(static) if (n > (1 << 20))
    for (int64_t i = 0; i < n; i++) {
        if (dtype == DTYPE_I32) {
            int32_t v;
            memcpy(&v, src + 4 * i, 4);
            dst[i] = (float)v;
        } else if (dtype == DTYPE_F8_E4M3 || dtype == DTYPE_F8_E5M2) {
            dst[i] = dtype == DTYPE_F8_E4M3 ? f8_e4m3_to_f32(src[i]) : f8_e5m2_to_f32(src[i]);
        } else {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = dtype == DTYPE_BF16 ? bf16_to_f32(h) : f16_to_f32(h);
        }
    }
    return 0;
}

int safetensors_read_i32(const safetensors *st, const char *name, int ndim, const int64_t *shape, int32_t *dst)
{
    const st_record *r = lookup_checked(st, name, ndim, shape);
    if (!r) return -1;
    const uint8_t *src = r->entry.data;
    if (r->supported && r->entry.dtype == DTYPE_I32) {
        if (r->entry.nbytes) memcpy(dst, src, r->entry.nbytes);
        return 0;
    }
    if (strcmp(r->dtype_name, "I64") != 0)
        return error_set("tensor \"%s\" in %s has dtype %s, expected I32 or I64", name, r->entry.file, r->dtype_name);
    size_t n = r->entry.nbytes / 8;
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        memcpy(&v, src + 8 * i, 8);
        if (v < INT32_MIN || v > INT32_MAX)
            return error_set("tensor \"%s\" in %s: I64 value %lld at index %zu does not fit in int32", name,
                             r->entry.file, (long long)v, i);
        dst[i] = (int32_t)v;
    }
    return 0;
}

void safetensors_release(const safetensors_entry *e)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), begin = (uintptr_t)e->data, end = begin + e->nbytes;
    if (e->nbytes == 0 || page == 0 || page == (uintptr_t)-1) return;
    begin -= begin % page; /* the pages it shares with its neighbours go too: a read faults them in again */
    end += (page - end % page) % page;
    madvise((void *)begin, end - begin, MADV_DONTNEED);
}

/* ---- writer ---- */

/* The tensors' names, dtypes and shapes make a header (their data are not
 * looked at: a streamed file's arrive later). */
static int check_write_layouts(const char *path, const char *const *names, const tensor *tensors, int count)
{
    double total = 0; /* cJSON prints whole numbers exactly only below 1e15 */
    for (int i = 0; i < count; i++) {
        const tensor *t = &tensors[i];
        if (!names[i] || !names[i][0] || strcmp(names[i], "__metadata__") == 0)
            return error_set("writing %s: tensor %d has no usable name", path, i);
        int bad = t->device != DEVICE_CPU || t->ndim < 0 || t->ndim > TENSOR_MAX_DIMS || !dtype_size(t->dtype);
        for (int d = 0; !bad && d < t->ndim; d++) bad = t->shape[d] < 0;
        if (bad)
            return error_set("writing %s: tensor \"%s\" is not a host tensor with data, a known dtype and a valid "
                             "shape", path, names[i]);
        for (int j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                return error_set("writing %s: tensor \"%s\" given twice", path, names[i]);
        if ((total += (double)tensor_nbytes(t)) >= 1e15) return error_set("writing %s: over 1 PB of data", path);
    }
    return count >= 0 ? 0 : error_set("writing %s: negative tensor count", path);
}

/* Header JSON for the tensors in order, padded with spaces so the data
 * section starts 8-byte aligned; NULL when out of memory. */
static char *build_header(const char *const *names, const tensor *tensors, int count, size_t *len)
{
    cJSON *root = cJSON_CreateObject();
    double offset = 0;
    for (int i = 0; root && i < count; i++) {
        const tensor *t = &tensors[i];
        double shape[TENSOR_MAX_DIMS], offsets[2] = {offset, offset + (double)tensor_nbytes(t)};
        for (int d = 0; d < t->ndim; d++) shape[d] = (double)t->shape[d];
        cJSON *item = cJSON_AddObjectToObject(root, names[i]);
        if (!item || !cJSON_AddStringToObject(item, "dtype", dtype_name(t->dtype)) ||
            !cJSON_AddItemToObject(item, "shape", cJSON_CreateDoubleArray(shape, t->ndim)) ||
            !cJSON_AddItemToObject(item, "data_offsets", cJSON_CreateDoubleArray(offsets, 2))) {
            cJSON_Delete(root);
            root = NULL;
        }
        offset = offsets[1];
    }
    char *json = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!json) return NULL;
    size_t n = strlen(json), padded = (n + 7) / 8 * 8;
    char *header = malloc(padded);
    if (header) {
        memcpy(header, json, n);
        memset(header + n, ' ', padded - n);
        *len = padded;
    }
    free(json);
    return header;
}

struct safetensors_writer {
    temp_file file;
    char **names;
    tensor *layouts; /* dtype and shape of every tensor, in file order */
    int count, next;
};

static void writer_free(safetensors_writer *w)
{
    for (int i = 0; i < w->count; i++) free(w->names[i]);
    free(w->names);
    free(w->layouts);
    free(w);
}

int safetensors_writer_open(safetensors_writer **out, const char *path, const char *const *names,
                            const tensor *layouts, int count)
{
    *out = NULL;
    if (check_write_layouts(path, names, layouts, count) != 0) return -1;
    safetensors_writer *w = calloc(1, sizeof *w);
    if (w) w->names = calloc((size_t)count + 1, sizeof *w->names);
    if (w) w->layouts = malloc(((size_t)count + 1) * sizeof *w->layouts);
    for (int i = 0; w && w->names && w->layouts && i < count; i++, w->count++) {
        if (!(w->names[i] = strdup(names[i]))) break;
        w->layouts[i] = layouts[i];
        w->layouts[i].data = NULL;
    }
    char *header = NULL;
    size_t header_len = 0;
    if (w && w->count == count) header = build_header((const char *const *)w->names, w->layouts, count, &header_len);
    if (!header) {
        if (w) writer_free(w);
        return error_set("writing %s: out of memory", path);
    }
    uint8_t len_bytes[8];
    for (int i = 0; i < 8; i++) len_bytes[i] = (uint8_t)((uint64_t)header_len >> (8 * i));
    int status = temp_file_open(&w->file, path);
    if (status == 0) {
        temp_file_write(&w->file, len_bytes, 8);
        temp_file_write(&w->file, header, header_len);
    }
    free(header);
    if (status) {
        writer_free(w);
        return -1;
    }
    *out = w;
    return 0;
}

int safetensors_writer_append(safetensors_writer *w, const tensor *t)
{
    if (w->next == w->count)
        return error_set("writing %s: tensor %d given, the header lists %d", w->file.target, w->next + 1, w->count);
    const tensor *want = &w->layouts[w->next];
    int same = t->dtype == want->dtype && t->ndim == want->ndim && t->device == DEVICE_CPU;
    for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == want->shape[d];
    if (!same || (!t->data && tensor_nbytes(t) > 0))
        return error_set("writing %s: tensor \"%s\" is not the host tensor with data, dtype and shape its header "
                         "lists", w->file.target, w->names[w->next]);
    w->next++;
    if (temp_file_write(&w->file, t->data, tensor_nbytes(t)) == 0 && !w->file.error) return 0;
    return error_set("writing %s: %s", w->file.target, strerror(w->file.error)); /* stop early: a full disk */
}

int safetensors_writer_commit(safetensors_writer *w)
{
    int status = 0;
    if (w->next < w->count) {
        status = error_set("writing %s: %d of the %d tensors given", w->file.target, w->next, w->count);
        temp_file_discard(&w->file);
    } else {
        status = temp_file_commit(&w->file, 1);
    }
    writer_free(w);
    return status;
}

void safetensors_writer_discard(safetensors_writer *w)
{
    if (!w) return;
    temp_file_discard(&w->file);
    writer_free(w);
}

int safetensors_write(const char *path, const char *const *names, const tensor *tensors, int count)
{
    safetensors_writer *w = NULL;
    if (safetensors_writer_open(&w, path, names, tensors, count)) return -1;
    for (int i = 0; i < count; i++)
        if (safetensors_writer_append(w, &tensors[i])) {
            safetensors_writer_discard(w);
            return -1;
        }
    return safetensors_writer_commit(w);
}
