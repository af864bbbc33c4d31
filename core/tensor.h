/* A tensor is a view: dtype, device, shape and a pointer to contiguous
 * row-major data that someone else owns (a model's weight store or a run's
 * arena). Tensors are passed by value; copying one copies the view, not the
 * data. Shapes use the same letters everywhere: S sequence, C channels, H heads,
 * D head dim, E experts, K top-k. */
#ifndef MOEDIT_CORE_TENSOR_H
#define MOEDIT_CORE_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#define TENSOR_MAX_DIMS 4

/* F8_E4M3 and F8_E5M2 are OCP float8 codes (core/float8.h), one byte each:
 * a matrix of F8_E4M3 is a quantized weight or activation whose real values
 * are code * scale[row] (tensor.scale). */
typedef enum { DTYPE_F32 = 0, DTYPE_F16, DTYPE_BF16, DTYPE_I32, DTYPE_F8_E4M3, DTYPE_F8_E5M2 } tensor_dtype;
typedef enum { DEVICE_CPU = 0, DEVICE_CUDA } tensor_device;

typedef struct tensor {
    tensor_dtype dtype;
    tensor_device device;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    void *data;
    /* Quantized dtypes (F8): F32 [rows] on the same device, row r's values
     * being data[r, :] * scale[r] (one scale per output channel of a weight,
     * per token of an activation); NULL otherwise. A row slice slices it too. */
    void *scale;
} tensor;

size_t dtype_size(tensor_dtype dtype);
const char *dtype_name(tensor_dtype dtype);
const char *device_name(tensor_device device);

int64_t tensor_numel(const tensor *t);
size_t tensor_nbytes(const tensor *t);

/* Number of rows and row length when the tensor is seen as a matrix
 * [rows, last dim]. */
int64_t tensor_rows(const tensor *t);
int64_t tensor_cols(const tensor *t);

/* A tensor header with no data yet. */
tensor tensor_make(tensor_dtype dtype, tensor_device device, int ndim, const int64_t *shape);
tensor tensor_make_2d(tensor_dtype dtype, tensor_device device, int64_t rows, int64_t cols);

/* The rows [first, first + count) of a tensor seen as a matrix; a view. */
tensor tensor_row_slice(tensor t, int64_t first, int64_t count);

/* The same data seen as [rows, cols]; rows * cols must equal numel. */
tensor tensor_reshape_2d(tensor t, int64_t rows, int64_t cols);

/* "[2, 64, 128]" into buf; returns buf. */
const char *tensor_shape_string(const tensor *t, char *buf, size_t size);

/* Half-precision conversions (round to nearest even). */
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

#endif
