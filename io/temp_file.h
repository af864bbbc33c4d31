/* Output files written whole or not at all: the bytes go to a temporary file
 * beside the target, which is renamed over the target once complete.
 *
 * The temporary's name is short and hidden (".moedit-<pid>-<n>" in the
 * target's directory), so it fits wherever the target's name fits (a legal
 * 255-byte name plus a suffix would not). While open, the temporary is listed
 * in a fixed, async-signal-safe registry: temp_file_handle_signals() makes
 * SIGINT, SIGTERM and SIGHUP remove every listed temporary (and every folder
 * being made, temp_file_folder_create), then end the process by the
 * signal's default action (status 128 + signo in a shell).
 *
 * Write errors keep errno's reason from the first failing write, so a full
 * disk reads "writing out.png: No space left on device". */
#ifndef MOEDIT_IO_TEMP_FILE_H
#define MOEDIT_IO_TEMP_FILE_H

#include <stddef.h>
#include <stdio.h>

#define TEMP_FILE_PATH 4096

typedef struct temp_file {
    FILE *f;                     /* write through temp_file_write, or directly (then errors come from ferror) */
    char path[TEMP_FILE_PATH];   /* the temporary */
    char target[TEMP_FILE_PATH]; /* the file it becomes */
    int slot;                    /* in the signal registry, or -1 */
    int error;                   /* errno of the first failed temp_file_write, or 0 */
} temp_file;

/* Creates the temporary for `target` (a new file, mode 0666 less the umask).
 * Error: "cannot write TARGET: REASON". */
int temp_file_open(temp_file *t, const char *target);

/* Writes n bytes; on failure keeps errno's reason (first failure wins) and
 * returns -1 without setting the error message. */
int temp_file_write(temp_file *t, const void *data, size_t n);

/* Flushes (and with `sync` fsyncs), closes and renames the temporary over
 * the target. On failure the temporary is removed and the error says
 * "writing TARGET: REASON". Either way t is finished. */
int temp_file_commit(temp_file *t, int sync);

/* Closes and removes the temporary (after another failure); keeps the error
 * message as it is. */
void temp_file_discard(temp_file *t);

/* SIGINT, SIGTERM and SIGHUP (where their action is still the default)
 * remove the open temporaries, then end the process with the signal; and
 * SIGXFSZ is ignored, so a write past the file-size limit fails with EFBIG
 * (reported like any write error) instead of killing the process. For
 * programs: call once at start. */
void temp_file_handle_signals(void);

/* A folder made whole or not at all (moedit quantize's hidden work folder,
 * renamed into place at the end): mkdtemp(template) ("DIR/.NAME-XXXXXX"),
 * listed in the same registry, so a handled signal removes it with
 * everything below it (io/directory_tree.h). The signals are held back
 * between making and listing it. Returns 0 and *slot (-1 when the registry
 * is full: then a signal leaves it), or -1 with mkdtemp's errno. */
int temp_file_folder_create(char *template, int *slot);

/* The folder is no longer removed on a signal (it was renamed into place, or
 * removed). A slot of -1 is nothing. */
void temp_file_folder_release(int slot);

/* Removes every open temporary: async-signal-safe, for an embedding
 * program's own signal handler. */
void temp_file_remove_all(void);

#endif
