/* See env_choice.h. */
#include "core/env_choice.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int env_choice(const char *name, const char *const *values, int count, int fallback, int *warned)
{
    const char *v = getenv(name);
    if (!v || !*v) return fallback;
    for (int i = 0; i < count; i++)
        if (!strcmp(v, values[i])) return i;
    if (!*warned) {
        *warned = 1;
        fprintf(stderr, "moedit: warning: %s=%s is not one of", name, v);
        for (int i = 0; i < count; i++) fprintf(stderr, " %s%s", values[i], i + 1 < count ? "," : "");
        fprintf(stderr, "; using %s\n", values[fallback]);
    }
    return fallback;
}
