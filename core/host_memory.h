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

/* Processes of this run on this machine (ranks of one launcher; default 1),
 * which load their weights at the same time: each asks for about as much as
 * the others, so a check is for `bytes` times this many. world_init sets it. */
void host_memory_set_sharers(int processes);

/* 0 when `bytes` for `what`, once per sharing process, fit in available
 * memory (or it cannot tell); else -1 with "WHAT: N GiB of memory needed,
 * M GiB available on this machine" (and the share of each rank when several
 * share the machine). */
int host_memory_check(int64_t bytes, const char *what);

/* Bytes of address space this process may still map under its limit
 * (RLIMIT_AS, `ulimit -v`): the limit less what is mapped now (VmSize);
 * -1 when there is no limit. *limit gets the limit itself. */
int64_t host_memory_address_space_left(int64_t *limit);

#endif
