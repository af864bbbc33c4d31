/* The CUDA backend: BF16 activations and weights, FP32 accumulation,
 * cuBLASLt matrix products and moedit's own kernels for everything else.
 * Built only when CMake finds a CUDA compiler (MOEDIT_HAVE_CUDA). */
#ifndef MOEDIT_BACKEND_CUDA_BACKEND_CUDA_H
#define MOEDIT_BACKEND_CUDA_BACKEND_CUDA_H

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The backend on GPU device_index (-1: the launcher's local rank modulo the
 * GPUs present, so each rank of a node takes its own GPU); NULL with the
 * error set ("no CUDA device: ...") when there is no such GPU or CUDA fails
 * to start on it. */
backend *backend_cuda_create(int device_index);

/* GPUs the driver reports (0 without a driver or a GPU). */
int backend_cuda_device_count(void);

/* Ops return nothing, so a CUDA failure inside one (a failed launch, a
 * device fault) is kept here: 0 while every call so far succeeded, else -1
 * with the first failure's message set as the error. Synchronizes. */
int backend_cuda_status(backend *be);

/* The cudaStream_t every op of this backend is ordered on (for NCCL). */
void *backend_cuda_stream(backend *be);

#ifdef __cplusplus
}
#endif

#endif
