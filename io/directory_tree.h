/* Whole directory trees: a model folder's components copied beside a new
 * one (moedit quantize), and a half-made output folder removed. */
#ifndef MOEDIT_IO_DIRECTORY_TREE_H
#define MOEDIT_IO_DIRECTORY_TREE_H

/* dst (which must not exist) becomes a copy of the tree at src: directories
 * made, each regular file hard-linked where the file system allows (the
 * same inode: no bytes copied; a model's files are only ever read) and
 * copied otherwise; symbolic links are followed. Fails naming the path. */
int directory_tree_copy(const char *src, const char *dst);

/* Removes path and everything below it (symbolic links themselves, never
 * their targets; at most 32 levels down); quiet on failure (cleanup after an
 * error), errno kept. Async-signal-safe (Linux): a signal handler may call
 * it (io/temp_file.h's does, for a folder being made). */
void directory_tree_remove(const char *path);

#endif
