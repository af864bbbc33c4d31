/* Per-op timing of a backend (MOEDIT_PROFILE_OPS=1); see backend_profile.c. */
#ifndef MOEDIT_BACKEND_BACKEND_PROFILE_H
#define MOEDIT_BACKEND_BACKEND_PROFILE_H

#include "backend/backend.h"

/* A backend that runs every op of `inner` synchronously, timed, and prints
 * the table of op times to stderr when destroyed (which destroys `inner`). */
backend *backend_profile_wrap(backend *inner);

/* Adds `seconds` of host work under `key` to the table when `be` is a
 * profiled backend (nothing otherwise): the host's share of a step, e.g. the
 * MoE routing during which the device has nothing queued. */
void backend_profile_host(backend *be, const char *key, double seconds);

/* Whether MOEDIT_PROFILE_OPS is set to something other than 0. */
int backend_profile_requested(void);

#endif
