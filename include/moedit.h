/* moedit's public C API: what the moedit program itself is built on.
 * Every function returns 0 on success and -1 on failure, with the message in
 * moedit_error(). */
#ifndef MOEDIT_H
#define MOEDIT_H

#include <stdio.h>

/* The message of the last failure on this thread. */
const char *moedit_error(void);

/* Prints a model directory's components: class, key config, parameter counts
 * (total; and active per token for a MoE transformer), dtypes and size on
 * disk. json: one JSON object instead of text. check: also load every
 * transformer weight on the CPU, which validates names, shapes and dtypes. */
int moedit_inspect(const char *model_dir, int json, int check, FILE *out);

#endif
