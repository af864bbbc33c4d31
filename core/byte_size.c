/* Parsing sizes like "24G"; see byte_size.h. */
#include "core/byte_size.h"

#include "core/error.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The multiplier a unit names (after the number), or 0 when it names none. */
static double unit_of(const char *unit)
{
    static const char *const prefixes = "KMGT";
    if (!*unit || !strcasecmp(unit, "B")) return 1;
    const char *at = strchr(prefixes, toupper((unsigned char)unit[0]));
    if (!at || !unit[0]) return 0;
    const char *rest = unit + 1;
    if (*rest && strcasecmp(rest, "B") && strcasecmp(rest, "iB")) return 0;
    return ldexp(1.0, 10 * (int)(at - prefixes + 1));
}

int byte_size_parse(const char *text, const char *flag, int64_t *bytes)
{
    *bytes = 0;
    const char *usage = "expected a positive size such as 24G, 512M or 1.5GiB";
    if (!text || !isdigit((unsigned char)text[0]))
        return error_set("%s %s: %s", flag, text ? text : "(none)", usage);
    errno = 0;
    char *end = NULL;
    double value = strtod(text, &end);
    double unit = unit_of(end);
    /* Decimal digits and a point only: strtod would also read "0x10" and "1e3". */
    if (errno || unit == 0 || end != text + strspn(text, "0123456789."))
        return error_set("%s %s: %s", flag, text, usage);
    double total = value * unit;
    if (!(total <= ldexp(1.0, 62))) return error_set("%s %s: too large (at most 4 EiB)", flag, text);
    if (total < 1) return error_set("%s %s: %s", flag, text, usage);
    *bytes = (int64_t)total;
    return 0;
}
