/* Device memory a component holds, counted at the backend seam: a view of a
 * backend whose alloc and free are counted (bytes in use now, and the most
 * in use at once since the last reset), every other op the inner backend's
 * own. The text side runs each encoder on such a view, so a run reports
 * what each encoder held at its peak: weights plus activations, whatever
 * the device (memory a device library keeps to itself is not seen). */
#ifndef MOEDIT_BACKEND_BACKEND_MEMORY_H
#define MOEDIT_BACKEND_BACKEND_MEMORY_H

#include "backend/backend.h"

#include <stdint.h>

/* A counting view of inner (which it does not own); NULL with the error set
 * when out of host memory. backend_destroy on the view frees the view only;
 * everything allocated through it must be freed first. */
backend *backend_memory_wrap(backend *inner);

int64_t backend_memory_in_use(const backend *view);
int64_t backend_memory_peak(const backend *view);
void backend_memory_reset_peak(backend *view); /* peak = bytes in use now */

/* The backend a view counts for, or NULL when be is not a counting view. */
backend *backend_memory_inner(backend *be);

#endif
