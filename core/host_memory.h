/* Whether a host allocation of a given size can be backed: the CPU backend's
 * weights are malloc'ed and filled, and on Linux an allocation larger than
 * free memory succeeds and then the kernel kills the process while it is
 * being filled (no message, exit 137). Checking first turns that into an
 * error line. */
#ifndef MOEDIT_CORE_HOST_MEMORY_H
#define MOEDIT_CORE_HOST_MEMORY_H

#include <stdint.h>

/* Bytes the kernel reports available (MemAvailable + SwapFree of
 * /proc/meminfo); -1 when it cannot tell (no /proc: no check). */
int64_t host_memory_available(void);

/* 0 when `bytes` for `what` fit in available memory (or it cannot tell); else
 * -1 with "WHAT: N GiB of memory needed, M GiB available on this machine". */
int host_memory_check(int64_t bytes, const char *what);

#endif
