/* One error path for the whole library.
 *
 * Library functions return 0 on success and -1 on failure; on failure they
 * call error_set() with a message that names the file, tensor, key, flag or
 * rank at fault. Only main() prints it, as "moedit: error: <message>", and
 * picks the exit code. The message is thread-local so OpenMP workers and
 * concurrent tests do not trample each other. */
#ifndef MOEDIT_CORE_ERROR_H
#define MOEDIT_CORE_ERROR_H

#if defined(__GNUC__)
#define MOEDIT_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define MOEDIT_PRINTF(fmt, args)
#endif

/* Record the error message; always returns -1 so callers can
 * `return error_set(...)`. */
int error_set(const char *fmt, ...) MOEDIT_PRINTF(1, 2);

/* Prefix the current message with more context ("loading transformer: ...");
 * returns -1. */
int error_prefix(const char *fmt, ...) MOEDIT_PRINTF(1, 2);

/* The last message set on this thread ("" if none). */
const char *error_message(void);

void error_clear(void);

/* After the ranks of a run agreed that it failed (world_agree): every rank
 * knows, so none needs to be aborted, and only `print_here` ranks print the
 * message (one line for the whole run). Setting a new error forgets this. */
void error_mark_agreed(int print_here);
int error_is_agreed(void);
int error_prints_here(void);

/* A failure met at the same point by every rank this one exchanges data
 * with, which all know it (a check whose result was all-reduced over them,
 * such as the denoise loop's non-finite scan): none of them waits in a
 * collective for another, so no rank needs aborting and the run's closing
 * agreement (world_agree_end) reports it once. Setting a new error forgets it. */
void error_mark_shared(void);
int error_is_shared(void);

/* This rank stays silent about its error (another rank prints the run's
 * line); the error is not agreed, so the run is still aborted. */
void error_mark_quiet(void);

#endif
