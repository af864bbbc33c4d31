/* Reading the reference tensors of a fixture file (tests/fixtures/ * /io.safetensors). */
#ifndef MOEDIT_TESTS_TEST_FIXTURE_H
#define MOEDIT_TESTS_TEST_FIXTURE_H

#include "core/error.h"
#include "io/safetensors.h"
#include "test_util.h"

#include <stdint.h>
#include <stdlib.h>

/* Tensor `name` of io as a malloc'ed F32 array (any stored dtype), its
 * element count in *numel and its shape in shape (each when not NULL); NULL
 * when the fixture lacks it or it cannot be read. */
static inline float *fixture_read(const safetensors *io, const char *name, int64_t *numel, int64_t *shape)
{
    const safetensors_entry *e = safetensors_find(io, name);
    if (!e) return NULL;
    int64_t n = 1;
    for (int i = 0; i < e->ndim; i++) {
        n *= e->shape[i];
        if (shape) shape[i] = e->shape[i];
    }
    if (numel) *numel = n;
    float *data = malloc((size_t)n * sizeof(float));
    if (data && safetensors_read_f32(io, name, e->ndim, e->shape, data)) {
        free(data);
        return NULL;
    }
    return data;
}

/* The 1-D I32 tensor `name` of io (token ids, a mask) malloc'ed, its length
 * in *count; NULL when io lacks it (loops over numbered tensors stop there);
 * one that is there but cannot be read fails the test. */
static inline int32_t *fixture_read_i32(const safetensors *io, const char *name, int64_t *count)
{
    const safetensors_entry *e = safetensors_find(io, name);
    if (!e) return NULL;
    *count = e->shape[0];
    int32_t *values = malloc((size_t)*count * sizeof(int32_t));
    CHECK(safetensors_read_i32(io, name, 1, e->shape, values) == 0);
    return values;
}

/* fixture_read of a tensor the test needs: one it cannot read fails the test. */
static inline float *fixture_expect(const safetensors *io, const char *name, int64_t *numel)
{
    float *data = fixture_read(io, name, numel, NULL);
    CHECK_MSG(data != NULL, "fixture lacks %s or it cannot be read: %s", name, error_message());
    return data;
}

#endif
