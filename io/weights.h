/* Loading named weights onto a backend.
 *
 * A weight_loader reads tensors by their diffusers names from a safetensors
 * set, checks the shape the model expects, converts to the backend's dtype and
 * uploads. With `random` set it reads no file and fills each tensor from the
 * Philox generator keyed by the tensor's name (for --random-weights benchmarks
 * at real model sizes), on the backend's device and only the shard's block
 * (backend fill_uniform): uniform values with the variance of N(0, 1/fan_in)
 * for matrices and of N(0, 0.02^2) for biases and other vectors; norm
 * weights 1 (norm biases are biases). (Uniform, not normal: billions of
 * them are made per run.) Every model loader takes this mode: the
 * transformer, the VAE and the four text encoders.
 *
 * Tensors stored as F8 (F8_E4M3, F8_E5M2, with scales by the conventions of
 * io/fp8_weights.h) load as their values code * scale, in any precision.
 *
 * A shard loads one slice of the full tensor: rows [index * n / count, ...)
 * (column-parallel weights) or the same slice of columns (row-parallel). */
#ifndef MOEDIT_IO_WEIGHTS_H
#define MOEDIT_IO_WEIGHTS_H

#include "backend/backend.h"
#include "io/lora.h"
#include "io/safetensors.h"

typedef enum { SHARD_NONE = 0, SHARD_ROWS, SHARD_COLS } shard_axis;

typedef struct weight_shard {
    shard_axis axis;
    int index;
    int count;
    /* NULL: count even parts (extent * index / count onwards); else count + 1
     * ascending boundaries of the split axis, from 0 to its extent. */
    const int64_t *bounds;
} weight_shard;

typedef struct weight_loader {
    const safetensors *st; /* NULL when random */
    backend *be;
    int random;
    uint64_t seed;
    int fp8; /* weight_load_linear holds its weights as F8_E4M3 codes + F32 row scales (docs/fp8.md) */
    const char *prefix; /* prepended to every name, e.g. "" */
    lora_set *const *loras; /* adapters merged, in order, into the weights they name as those load */
    int lora_count;
    int64_t bytes_on_device; /* running total, for reports */
    int64_t parameters;      /* elements loaded */
    float *staging;          /* host F32 buffer reused between tensors */
    size_t staging_floats;
    void **allocations;      /* every device buffer, freed by weight_loader_free_all */
    size_t *allocation_bytes; /* and its size (dit/dit_weight_stream.c packs a block's buffers by them) */
    int allocation_count, allocation_capacity;
} weight_loader;

void weight_loader_init(weight_loader *wl, backend *be, const safetensors *st, int random, uint64_t seed);

/* Loads `name` of full shape [rows, cols] (cols = 0 for a vector [rows]) into
 * *out, or the shard of it. Fails naming the tensor and file. */
int weight_load(weight_loader *wl, tensor *out, const char *name, int64_t rows, int64_t cols, weight_shard shard);

/* A linear layer's weight [rows = out, cols = in]: weight_load, or with
 * wl->fp8 an F8_E4M3 tensor whose `scale` is an F32 [rows] on the device,
 * quantized per row from the whole matrix before the split (so every
 * shard's codes and scales are the serial ones), or taken as stored from an
 * F8_E4M3 file (io/fp8_weights.h). The codes upload as raw bytes and the
 * scales as F32 (backend.h upload); no dequantized copy is made on any
 * backend. */
int weight_load_linear(weight_loader *wl, tensor *out, const char *name, int64_t rows, int64_t cols,
                       weight_shard shard);

/* The same, kept in F32 on the device whatever the backend's dtype (for a
 * weight that transformers keeps in float32 under a half-precision model,
 * like T5's wo: _keep_in_fp32_modules). */
int weight_load_f32(weight_loader *wl, tensor *out, const char *name, int64_t rows, int64_t cols, weight_shard shard);

/* *out = an I32 vector [n] on the backend holding values[] (an index map
 * made at load time), freed with the weights. */
int weight_load_indices(weight_loader *wl, tensor *out, const int32_t *values, int64_t n);

/* 1 if the tensor exists (always 1 for random weights). */
int weight_exists(const weight_loader *wl, const char *name);

/* On the CPU backend: 0 when every tensor of st, converted to the backend's
 * dtype, fits in the memory the machine has available; else -1 with
 * "WHAT: N GiB of memory needed, ..." (core/host_memory.h). Other backends:
 * 0 (their allocations fail cleanly). */
int weights_check_host_memory(const backend *be, const safetensors *st, const char *what);

/* The same for random weights (no file): `parameters` elements in the
 * backend's dtype. */
int weights_check_random_host_memory(const backend *be, int64_t parameters, const char *what);

/* Frees the staging buffer only (weights stay on the device). */
void weight_loader_finish(weight_loader *wl);

/* An encoder's weights from dir's model*.safetensors, or from Philox
 * (random; `parameters` sizes the host-memory check): checks host memory,
 * initialises wl and calls load(user, st) (st NULL when random), then
 * finishes wl. `what` names the weights in the memory check's message. */
int weights_load_dir(weight_loader *wl, backend *be, const char *dir, int random, uint64_t seed,
                     int64_t parameters, const char *what, int (*load)(void *user, const safetensors *st),
                     void *user);

/* Frees every tensor this loader put on the device, and the staging buffer. */
void weight_loader_free_all(weight_loader *wl);

static inline weight_shard shard_whole(void)
{
    weight_shard s = {SHARD_NONE, 0, 1, NULL};
    return s;
}

#endif
