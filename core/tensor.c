/* Tensor views and half-precision conversions; see tensor.h. */
#include "core/tensor.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

size_t dtype_size(tensor_dtype dtype)
{
    switch (dtype) {
    case DTYPE_F32: return 4;
    case DTYPE_F16: return 2;
    case DTYPE_BF16: return 2;
    case DTYPE_I32: return 4;
    case DTYPE_F8_E4M3: return 1;
    case DTYPE_F8_E5M2: return 1;
    }
    return 0;
}

const char *dtype_name(tensor_dtype dtype)
{
    switch (dtype) {
    case DTYPE_F32: return "F32";
    case DTYPE_F16: return "F16";
    case DTYPE_BF16: return "BF16";
    case DTYPE_I32: return "I32";
    case DTYPE_F8_E4M3: return "F8_E4M3";
    case DTYPE_F8_E5M2: return "F8_E5M2";
    }
    return "?";
}

const char *device_name(tensor_device device) { return device == DEVICE_CUDA ? "cuda" : "cpu"; }

int64_t tensor_numel(const tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t tensor_nbytes(const tensor *t) { return (size_t)tensor_numel(t) * dtype_size(t->dtype); }

int64_t tensor_cols(const tensor *t) { return t->ndim == 0 ? 1 : t->shape[t->ndim - 1]; }

int64_t tensor_rows(const tensor *t)
{
    int64_t cols = tensor_cols(t);
    return cols == 0 ? 0 : tensor_numel(t) / cols;
}

tensor tensor_make(tensor_dtype dtype, tensor_device device, int ndim, const int64_t *shape)
{
    tensor t;
    memset(&t, 0, sizeof t);
    assert(ndim >= 0 && ndim <= TENSOR_MAX_DIMS);
    t.dtype = dtype;
    t.device = device;
    t.ndim = ndim;
    for (int i = 0; i < ndim; i++) t.shape[i] = shape[i];
    return t;
}

tensor tensor_make_2d(tensor_dtype dtype, tensor_device device, int64_t rows, int64_t cols)
{
    int64_t shape[2] = {rows, cols};
    return tensor_make(dtype, device, 2, shape);
}

tensor tensor_row_slice(tensor t, int64_t first, int64_t count)
{
    int64_t cols = tensor_cols(&t);
    assert(first >= 0 && count >= 0 && first + count <= tensor_rows(&t));
    tensor view = tensor_make_2d(t.dtype, t.device, count, cols);
    view.data = (char *)t.data + (size_t)(first * cols) * dtype_size(t.dtype);
    if (t.scale) view.scale = (float *)t.scale + first;
    return view;
}

tensor tensor_reshape_2d(tensor t, int64_t rows, int64_t cols)
{
    assert(rows * cols == tensor_numel(&t));
    tensor view = tensor_make_2d(t.dtype, t.device, rows, cols);
    view.data = t.data;
    if (rows == tensor_rows(&t)) view.scale = t.scale; /* the same rows: the same row scales */
    return view;
}

const char *tensor_shape_string(const tensor *t, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < t->ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
    return buf;
}

float bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t f32_to_bf16(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40); /* quiet NaN */
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    uint32_t bits;
    if (exponent == 0x1f) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else if (exponent != 0) {
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        bits = sign;
    } else { /* subnormal: normalise */
        exponent = 113;
        while (!(mantissa & 0x400u)) {
            mantissa <<= 1;
            exponent--;
        }
        bits = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t f32_to_f16(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    uint32_t abs_bits = bits & 0x7fffffffu;
    if (abs_bits > 0x7f800000u) return sign | 0x7e00u;
    if (abs_bits >= 0x477ff000u) return sign | 0x7c00u; /* overflow to inf */
    if (abs_bits < 0x38800000u) {                     /* subnormal or zero */
        float magnitude;
        memcpy(&magnitude, &abs_bits, sizeof magnitude);
        return sign | (uint16_t)lrintf(magnitude * 16777216.0f); /* units of 2^-24, nearest even */
    }
    uint32_t rounded = abs_bits + 0xfffu + ((abs_bits >> 13) & 1u);
    return sign | (uint16_t)((rounded - 0x38000000u) >> 13);
}
