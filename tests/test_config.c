/* Config getters: every typed getter on a diffusers-like config, null and
 * missing keys falling back in the _or getters, and errors that name the
 * file and the key for wrong types, malformed JSON, a top-level array and a
 * file that does not exist. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/error.h"
#include "tests/test_util.h"

static char temp_dir[] = "/tmp/moedit_test_config_XXXXXX";

static const char *temp_path(const char *name)
{
    static char buf[4][512];
    static int next;
    char *path = buf[next++ % 4];
    snprintf(path, sizeof buf[0], "%s/%s", temp_dir, name);
    return path;
}

static const char *write_text(const char *name, const char *text)
{
    const char *path = temp_path(name);
    FILE *fp = fopen(path, "wb");
    if (fp) fputs(text, fp), fclose(fp);
    return path;
}

/* rc is -1 and the message contains each of the phrases (NULL-terminated). */
static void check_error(int rc, const char *what, const char *phrase, const char *phrase2)
{
    const char *msg = error_message();
    printf("  %-32s -> %s\n", what, msg);
    CHECK_MSG(rc == -1, "%s: expected failure, got %d", what, rc);
    CHECK_MSG(strstr(msg, phrase) != NULL, "%s: message lacks \"%s\"", what, phrase);
    CHECK_MSG(!phrase2 || strstr(msg, phrase2) != NULL, "%s: message lacks \"%s\"", what, phrase2);
    error_clear();
}

static const char *good_json =
    "{\n"
    "  \"_class_name\": \"HiDreamImageTransformer2DModel\",\n"
    "  \"num_layers\": 16,\n"
    "  \"patch_size\": 2,\n"
    "  \"shift\": 3.0,\n"
    "  \"scaling_factor\": 0.3611,\n"
    "  \"shift_factor\": null,\n"
    "  \"use_dynamic_shifting\": false,\n"
    "  \"force_inference_dtype\": true,\n"
    "  \"axes_dims_rope\": [64, 32, 32],\n"
    "  \"sigmas\": [1, 0.5, 0.25],\n"
    "  \"vae\": [\"diffusers\", \"AutoencoderKL\"],\n"
    "  \"big\": 4294967296,\n"
    "  \"negative\": -7,\n"
    "  \"ratio\": 1.5,\n"
    "  \"name\": \"x\"\n"
    "}\n";

static void test_every_getter_on_a_good_config(void)
{
    config *c;
    CHECK(config_load(&c, write_text("config.json", good_json)) == 0);
    if (!c) return;
    CHECK(strstr(config_path(c), "config.json") != NULL);
    int64_t i = 0;
    double f = 0;
    int b = -1;
    const char *s = NULL;
    CHECK(config_get_int(c, "num_layers", &i) == 0 && i == 16);
    CHECK(config_get_int(c, "big", &i) == 0 && i == 4294967296ll);
    CHECK(config_get_int(c, "negative", &i) == 0 && i == -7);
    CHECK(config_get_int(c, "shift", &i) == 0 && i == 3); /* 3.0 is an integer */
    CHECK(config_get_int_or(c, "num_single_layers", 32, &i) == 0 && i == 32);
    CHECK(config_get_int_or(c, "patch_size", 1, &i) == 0 && i == 2);
    CHECK(config_get_float(c, "scaling_factor", &f) == 0 && f == 0.3611);
    CHECK(config_get_float(c, "num_layers", &f) == 0 && f == 16.0);
    CHECK(config_get_float_or(c, "shift_factor", 0.1159, &f) == 0 && f == 0.1159); /* null -> fallback */
    CHECK(config_get_float_or(c, "absent", -1.0, &f) == 0 && f == -1.0);
    CHECK(config_get_bool_or(c, "use_dynamic_shifting", 1, &b) == 0 && b == 0);
    CHECK(config_get_bool_or(c, "force_inference_dtype", 0, &b) == 0 && b == 1);
    CHECK(config_get_bool_or(c, "absent", 1, &b) == 0 && b == 1);
    CHECK(config_get_bool(c, "use_dynamic_shifting", &b) == 0 && b == 0);
    CHECK(config_get_string(c, "_class_name", &s) == 0 && strcmp(s, "HiDreamImageTransformer2DModel") == 0);
    CHECK(config_get_string_or(c, "absent", "fallback", &s) == 0 && strcmp(s, "fallback") == 0);
    CHECK(config_get_string_or(c, "name", "fallback", &s) == 0 && strcmp(s, "x") == 0);
    CHECK(config_has(c, "num_layers") && !config_has(c, "shift_factor") && !config_has(c, "absent"));

    int64_t dims[4];
    double sigmas[3];
    const char *names[2];
    int n = -1;
    CHECK(config_get_int_array(c, "axes_dims_rope", dims, 4, &n) == 0 && n == 3 && dims[0] == 64 && dims[2] == 32);
    CHECK(config_get_float_array(c, "sigmas", sigmas, 3, &n) == 0 && n == 3 && sigmas[1] == 0.5);
    CHECK(config_get_string_array(c, "vae", names, 2, &n) == 0 && n == 2 && strcmp(names[1], "AutoencoderKL") == 0);
    config_free(c);
}

static void test_errors_name_file_and_key(void)
{
    config *c;
    CHECK(config_load(&c, write_text("config.json", good_json)) == 0);
    if (!c) return;
    int64_t i, dims[2];
    double f;
    int b, n;
    const char *s;
    check_error(config_get_int(c, "num_attention_heads", &i), "missing key",
                "config.json: key \"num_attention_heads\"", "missing");
    check_error(config_get_int(c, "shift_factor", &i), "null key (plain getter)", "key \"shift_factor\"", "missing");
    check_error(config_get_int(c, "name", &i), "string where int expected", "config.json: key \"name\"",
                "must be an integer, got string \"x\"");
    check_error(config_get_int(c, "ratio", &i), "float where int expected", "config.json: key \"ratio\"",
                "got 1.5");
    check_error(config_get_int_or(c, "ratio", 4, &i), "float where int expected (_or)", "key \"ratio\"",
                "an integer");
    check_error(config_get_float(c, "vae", &f), "array where float expected", "key \"vae\"", "got an array");
    check_error(config_get_float_or(c, "use_dynamic_shifting", 1, &f), "bool where float expected",
                "key \"use_dynamic_shifting\"", "got false");
    check_error(config_get_bool_or(c, "num_layers", 0, &b), "int where bool expected", "key \"num_layers\"",
                "true or false");
    check_error(config_get_string(c, "num_layers", &s), "int where string expected", "key \"num_layers\"",
                "a string, got 16");
    check_error(config_get_string_or(c, "patch_size", "p", &s), "int where string expected (_or)",
                "config.json: key \"patch_size\"", "a string");
    check_error(config_get_int_array(c, "axes_dims_rope", dims, 2, &n), "array longer than max",
                "key \"axes_dims_rope\"", "3 elements, at most 2");
    double sig[3];
    check_error(config_get_int_array(c, "sigmas", dims, 3, &n), "float element in int array",
                "key \"sigmas\"[1]", "got 0.5");
    check_error(config_get_float_array(c, "vae", sig, 3, &n), "string element in float array", "key \"vae\"[0]",
                "a number");
    check_error(config_get_float_array(c, "ratio", sig, 3, &n), "number where array expected", "key \"ratio\"",
                "an array");
    check_error(config_get_float_array(c, "absent", sig, 3, &n), "missing array", "key \"absent\"", "missing");
    config_free(c);
}

static void test_bad_files(void)
{
    config *c = (config *)1;
    check_error(config_load(&c, write_text("malformed.json", "{\n  \"a\": 1,\n  \"b\": ,\n}\n")), "malformed JSON",
                "malformed.json", "line 3");
    CHECK(c == NULL);
    check_error(config_load(&c, write_text("array.json", "[1, 2, 3]")), "top-level array", "array.json",
                "not a JSON object");
    check_error(config_load(&c, write_text("trailing.json", "{\"a\": 1} {\"b\": 2}")), "trailing garbage",
                "trailing.json", "malformed JSON");
    check_error(config_load(&c, write_text("empty.json", "")), "empty file", "empty.json", "malformed JSON");
    check_error(config_load(&c, temp_path("nonexistent.json")), "nonexistent file", "nonexistent.json",
                "No such file");
    check_error(config_load(&c, temp_dir), "a directory", temp_dir, "cannot");
    check_error(config_parse(&c, "{\"a\": tru}", "inline"), "config_parse", "inline: malformed JSON", "line 1");
    CHECK(config_parse(&c, "{\"k\": [1, 2]}", NULL) == 0);
    int64_t v[2];
    int n;
    CHECK(c && config_get_int_array(c, "k", v, 2, &n) == 0 && n == 2 && v[1] == 2);
    config_free(c);
}

int main(void)
{
    if (!mkdtemp(temp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_every_getter_on_a_good_config();
    test_errors_name_file_and_key();
    test_bad_files();
    const char *files[] = {"config.json", "malformed.json", "array.json", "trailing.json", "empty.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) unlink(temp_path(files[i]));
    rmdir(temp_dir);
    return test_finish("test_config");
}
