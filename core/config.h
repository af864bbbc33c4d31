/* JSON config files (diffusers config.json, scheduler_config.json,
 * model_index.json) with typed getters.
 *
 * A config remembers the path it came from, so every error reads
 * `FILE: key "k" ...`. JSON null counts as absent: the _or getters return
 * their fallback for it, the plain getters fail. A present value of the
 * wrong type is always an error, never silently replaced by the fallback. */
#ifndef MOEDIT_CORE_CONFIG_H
#define MOEDIT_CORE_CONFIG_H

#include <stdint.h>

typedef struct config config; /* opaque */

/* The largest config file read (config_load, and configs read whole elsewhere). */
#define CONFIG_MAX_BYTES ((size_t)64 << 20)

/* Missing, unreadable, malformed (with line and column) or not an object:
 * an error naming the path. */
int config_load(config **out, const char *path);
/* The same from text in memory; name_for_errors stands for the path. */
int config_parse(config **out, const char *text, const char *name_for_errors);
void config_free(config *c);
/* config_load, then read(out, c) fills the caller's struct from it, then
 * config_free: one call for the loaders of config.json files. The status of
 * the load or of read (0 or -1, the error set). */
int config_read_file(const char *path, int (*read)(void *out, const config *c), void *out);
const char *config_path(const config *c);

/* Present and not null. */
int config_has(const config *c, const char *key);

/* Integers: a JSON number with no fractional part within +-2^53. */
int config_get_int(const config *c, const char *key, int64_t *out);
int config_get_int_or(const config *c, const char *key, int64_t fallback, int64_t *out);
/* The same into an int: values beyond +-2^30 are an error naming the key. */
int config_get_int32(const config *c, const char *key, int *out);
int config_get_int32_or(const config *c, const char *key, int fallback, int *out);
int config_get_float(const config *c, const char *key, double *out);
int config_get_float_or(const config *c, const char *key, double fallback, double *out);
int config_get_bool(const config *c, const char *key, int *out);
int config_get_bool_or(const config *c, const char *key, int fallback, int *out);
/* Strings stay valid until config_free. */
int config_get_string(const config *c, const char *key, const char **out);
int config_get_string_or(const config *c, const char *key, const char *fallback, const char **out);

/* Arrays: error if longer than max or an element is of the wrong type;
 * count receives the length. */
int config_get_int_array(const config *c, const char *key, int64_t *out, int max, int *count);
int config_get_float_array(const config *c, const char *key, double *out, int max, int *count);
/* e.g. model_index.json's "vae": ["diffusers", "AutoencoderKL"]. */
int config_get_string_array(const config *c, const char *key, const char **out, int max, int *count);

#endif
