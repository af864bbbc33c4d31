/* JSON config with typed getters on cJSON; see config.h.
 *
 * Each getter looks the key up (case-sensitive, top level), checks the JSON
 * type, and on failure says what it found: `FILE: key "k" must be an
 * integer, got 1.5`. */
#include "core/config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/text_file.h"

#define JSON_MAX_EXACT_INT 9007199254740992.0 /* 2^53 */

struct config {
    char *path;
    cJSON *root;
};

static char *copy_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = malloc(n);
    if (copy) memcpy(copy, s, n);
    return copy;
}

/* Line and column (from 1) of byte offset `at` of text. */
static void line_and_column(const char *text, size_t at, int *line, int *column)
{
    *line = 1;
    *column = 1;
    for (size_t i = 0; i < at && text[i]; i++) {
        if (text[i] == '\n') *line += 1, *column = 1;
        else *column += 1;
    }
}

int config_parse(config **out, const char *text, const char *name_for_errors)
{
    *out = NULL;
    const char *name = name_for_errors ? name_for_errors : "<config>";
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    if (!root) {
        int line, column;
        line_and_column(text, end ? (size_t)(end - text) : 0, &line, &column);
        return error_set("%s: malformed JSON at line %d, column %d", name, line, column);
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return error_set("%s: top level is not a JSON object", name);
    }
    config *c = malloc(sizeof *c);
    if (!c || !(c->path = copy_string(name))) {
        free(c);
        cJSON_Delete(root);
        return error_set("%s: out of memory", name);
    }
    c->root = root;
    *out = c;
    return 0;
}

int config_load(config **out, const char *path)
{
    *out = NULL;
    char *text = NULL;
    if (text_file_read(path, CONFIG_MAX_BYTES, "config", &text)) return -1;
    int rc = config_parse(out, text, path);
    free(text);
    return rc;
}

int config_read_file(const char *path, int (*read)(void *out, const config *c), void *out)
{
    config *c = NULL;
    if (config_load(&c, path)) return -1;
    int status = read(out, c);
    config_free(c);
    return status;
}

void config_free(config *c)
{
    if (!c) return;
    cJSON_Delete(c->root);
    free(c->path);
    free(c);
}

const char *config_path(const config *c) { return c->path; }

/* The value of key, or NULL when absent or null. */
static const cJSON *lookup(const config *c, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(c->root, key);
    return cJSON_IsNull(item) ? NULL : item;
}

int config_has(const config *c, const char *key) { return lookup(c, key) != NULL; }

/* A short description of a JSON value for messages: `string "abc"`, `1.5`. */
static const char *describe(const cJSON *item, char *buf, size_t size)
{
    if (cJSON_IsString(item)) snprintf(buf, size, "string \"%.40s\"", item->valuestring);
    else if (cJSON_IsNumber(item)) snprintf(buf, size, "%.17g", item->valuedouble);
    else if (cJSON_IsBool(item)) snprintf(buf, size, "%s", cJSON_IsTrue(item) ? "true" : "false");
    else if (cJSON_IsArray(item)) snprintf(buf, size, "an array");
    else if (cJSON_IsObject(item)) snprintf(buf, size, "an object");
    else snprintf(buf, size, "null");
    return buf;
}

static int wrong_type(const config *c, const char *key, const char *element, const char *expected,
                      const cJSON *item)
{
    char buf[96];
    return error_set("%s: key \"%s\"%s must be %s, got %s", c->path, key, element, expected,
                     describe(item, buf, sizeof buf));
}

static int missing(const config *c, const char *key) { return error_set("%s: key \"%s\" is missing", c->path, key); }

static int is_integer(const cJSON *item)
{
    if (!cJSON_IsNumber(item)) return 0;
    double v = item->valuedouble;
    return v == floor(v) && fabs(v) <= JSON_MAX_EXACT_INT;
}

/* The typed readers of one value; `element` is "" or "[i]" for messages. */
static int read_int(const config *c, const char *key, const char *element, const cJSON *item, int64_t *out)
{
    if (!is_integer(item)) return wrong_type(c, key, element, "an integer", item);
    *out = (int64_t)item->valuedouble;
    return 0;
}

static int read_float(const config *c, const char *key, const char *element, const cJSON *item, double *out)
{
    if (!cJSON_IsNumber(item)) return wrong_type(c, key, element, "a number", item);
    *out = item->valuedouble;
    return 0;
}

static int read_string(const config *c, const char *key, const char *element, const cJSON *item,
                       const char **out)
{
    if (!cJSON_IsString(item)) return wrong_type(c, key, element, "a string", item);
    *out = item->valuestring;
    return 0;
}

int config_get_int(const config *c, const char *key, int64_t *out)
{
    const cJSON *item = lookup(c, key);
    return item ? read_int(c, key, "", item, out) : missing(c, key);
}

int config_get_int_or(const config *c, const char *key, int64_t fallback, int64_t *out)
{
    const cJSON *item = lookup(c, key);
    if (!item) return *out = fallback, 0;
    return read_int(c, key, "", item, out);
}

/* An int64 that must fit an int (sizes, counts): out of range is an error. */
static int narrow(const config *c, const char *key, int64_t value, int *out)
{
    if (value < -(1 << 30) || value > (1 << 30))
        return error_set("%s: key \"%s\" = %lld is out of range", config_path(c), key, (long long)value);
    *out = (int)value;
    return 0;
}

int config_get_int32(const config *c, const char *key, int *out)
{
    int64_t value;
    return config_get_int(c, key, &value) ? -1 : narrow(c, key, value, out);
}

int config_get_int32_or(const config *c, const char *key, int fallback, int *out)
{
    int64_t value;
    return config_get_int_or(c, key, fallback, &value) ? -1 : narrow(c, key, value, out);
}

int config_get_float(const config *c, const char *key, double *out)
{
    const cJSON *item = lookup(c, key);
    return item ? read_float(c, key, "", item, out) : missing(c, key);
}

int config_get_float_or(const config *c, const char *key, double fallback, double *out)
{
    const cJSON *item = lookup(c, key);
    if (!item) return *out = fallback, 0;
    return read_float(c, key, "", item, out);
}

int config_get_bool(const config *c, const char *key, int *out)
{
    const cJSON *item = lookup(c, key);
    if (!item) return missing(c, key);
    if (!cJSON_IsBool(item)) return wrong_type(c, key, "", "true or false", item);
    *out = cJSON_IsTrue(item);
    return 0;
}

int config_get_bool_or(const config *c, const char *key, int fallback, int *out)
{
    if (!lookup(c, key)) return *out = fallback, 0;
    return config_get_bool(c, key, out);
}

int config_get_string(const config *c, const char *key, const char **out)
{
    const cJSON *item = lookup(c, key);
    return item ? read_string(c, key, "", item, out) : missing(c, key);
}

int config_get_string_or(const config *c, const char *key, const char *fallback, const char **out)
{
    const cJSON *item = lookup(c, key);
    if (!item) return *out = fallback, 0;
    return read_string(c, key, "", item, out);
}

/* The array at key, checked against max; its elements are read by the caller. */
static const cJSON *lookup_array(const config *c, const char *key, int max, int *count)
{
    const cJSON *item = lookup(c, key);
    if (!item) {
        missing(c, key);
        return NULL;
    }
    if (!cJSON_IsArray(item)) {
        wrong_type(c, key, "", "an array", item);
        return NULL;
    }
    int n = cJSON_GetArraySize(item);
    if (n > max) {
        error_set("%s: key \"%s\" has %d elements, at most %d expected", c->path, key, n, max);
        return NULL;
    }
    *count = n;
    return item;
}

static const char *element_name(char *buf, size_t size, int i)
{
    snprintf(buf, size, "[%d]", i);
    return buf;
}

int config_get_int_array(const config *c, const char *key, int64_t *out, int max, int *count)
{
    const cJSON *array = lookup_array(c, key, max, count);
    char element[24];
    int i = 0;
    for (const cJSON *item = array ? array->child : NULL; item; item = item->next, i++)
        if (read_int(c, key, element_name(element, sizeof element, i), item, &out[i]) != 0) return -1;
    return array ? 0 : -1;
}

int config_get_float_array(const config *c, const char *key, double *out, int max, int *count)
{
    const cJSON *array = lookup_array(c, key, max, count);
    char element[24];
    int i = 0;
    for (const cJSON *item = array ? array->child : NULL; item; item = item->next, i++)
        if (read_float(c, key, element_name(element, sizeof element, i), item, &out[i]) != 0) return -1;
    return array ? 0 : -1;
}

int config_get_string_array(const config *c, const char *key, const char **out, int max, int *count)
{
    const cJSON *array = lookup_array(c, key, max, count);
    char element[24];
    int i = 0;
    for (const cJSON *item = array ? array->child : NULL; item; item = item->next, i++)
        if (read_string(c, key, element_name(element, sizeof element, i), item, &out[i]) != 0) return -1;
    return array ? 0 : -1;
}
