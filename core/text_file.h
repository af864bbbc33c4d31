/* Whole text files (JSON configs, tokenizer.json) read into memory. */
#ifndef MOEDIT_CORE_TEXT_FILE_H
#define MOEDIT_CORE_TEXT_FILE_H

#include <stddef.h>

/* Reads `path` into *text (NUL-terminated, malloc'ed: the caller frees it)
 * when it is at most max_bytes long and holds no NUL byte. Else *text is
 * NULL and -1 with one of "PATH: cannot open WHAT: REASON", "PATH: cannot
 * read WHAT: REASON" (a directory, a FIFO
 * or other non-regular file, over the limit, a read error), "PATH:
 * WHAT contains a NUL byte; not a text file". */
int text_file_read(const char *path, size_t max_bytes, const char *what, char **text);

#endif
