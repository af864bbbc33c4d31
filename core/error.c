/* Thread-local error message; see error.h. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ERROR_CAPACITY 1024

static _Thread_local char error_text[ERROR_CAPACITY];
static _Thread_local int agreed, silent, shared;

int error_set(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(error_text, sizeof error_text, fmt, args);
    va_end(args);
    agreed = silent = shared = 0;
    return -1;
}

int error_prefix(const char *fmt, ...)
{
    char previous[ERROR_CAPACITY];
    memcpy(previous, error_text, sizeof previous);
    va_list args;
    va_start(args, fmt);
    int used = vsnprintf(error_text, sizeof error_text, fmt, args);
    va_end(args);
    if (used < 0 || (size_t)used + 2 >= sizeof error_text) return -1;
    /* Append ": " and as much of the previous message as fits. */
    size_t room = sizeof error_text - (size_t)used - 1;
    size_t length = strnlen(previous, sizeof previous - 1);
    memcpy(error_text + used, ": ", 2);
    room -= 2;
    if (length > room) length = room;
    memcpy(error_text + used + 2, previous, length);
    error_text[used + 2 + length] = '\0';
    return -1;
}

const char *error_message(void) { return error_text; }

void error_clear(void)
{
    error_text[0] = '\0';
    agreed = silent = shared = 0;
}

void error_mark_agreed(int print_here)
{
    agreed = 1;
    silent = !print_here;
}

int error_is_agreed(void) { return agreed; }

int error_prints_here(void) { return !silent; }

void error_mark_shared(void) { shared = 1; }

int error_is_shared(void) { return shared; }

void error_mark_quiet(void) { silent = 1; }
