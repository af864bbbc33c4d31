/* Checks, before a long run, that an output file can be written where the
 * user asked (a name is given, its directory exists and is writable, it is
 * not a directory, its name fits the file system's NAME_MAX),
 * so that a run does not fail at its very end. */
#ifndef MOEDIT_IO_OUTPUT_CHECK_H
#define MOEDIT_IO_OUTPUT_CHECK_H

/* 0, or one error naming `path` ("output ..." unless `what` names it, e.g. "--json"). */
int output_check_writable(const char *path, const char *what);

#endif
