/* Writing JSON by hand: strings quoted and escaped, so that a path or an
 * error message with a quote, a backslash or a control character still makes
 * valid JSON. */
#ifndef MOEDIT_IO_JSON_OUT_H
#define MOEDIT_IO_JSON_OUT_H

#include <stdio.h>

/* Writes s as a JSON string, quotes included. */
void json_write_string(FILE *f, const char *s);

#endif
