/* Sizes as people write them on a command line: "24G", "512M", "1.5GiB",
 * "1048576". A number (decimals allowed) and an optional binary unit K, M,
 * G or T (1024-based; "KB", "KiB" and lower case read the same). */
#ifndef MOEDIT_CORE_BYTE_SIZE_H
#define MOEDIT_CORE_BYTE_SIZE_H

#include <stdint.h>

/* *bytes = the size `text` names; 0, or -1 with one error naming `flag`
 * and the text when it is not a size, not positive, or over 2^62 bytes. */
int byte_size_parse(const char *text, const char *flag, int64_t *bytes);

#endif
