/* FP8 weights in safetensors files: scale conventions, dequantized and
 * quantized reads; see fp8_weights.h. */
#include "io/fp8_weights.h"

#include "core/error.h"
#include "core/float8.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LENGTH 512

int fp8_is_stored(const safetensors *st, const char *name)
{
    const char *dtype = safetensors_dtype_of(st, name);
    return dtype && (!strcmp(dtype, "F8_E4M3") || !strcmp(dtype, "F8_E5M2"));
}

/* The candidate scale names of weight `name`: NAME_scale, and for "X.weight" also X.scale_weight ("" if not). */
static void scale_names(const char *name, char candidates[2][NAME_MAX_LENGTH])
{
    size_t n = strlen(name), suffix = strlen(".weight");
    snprintf(candidates[0], NAME_MAX_LENGTH, "%s%s", name, FP8_SCALE_SUFFIX);
    candidates[1][0] = '\0';
    if (n > suffix && !strcmp(name + n - suffix, ".weight"))
        snprintf(candidates[1], NAME_MAX_LENGTH, "%.*s.scale_weight", (int)(n - suffix), name);
}

int fp8_is_scale_name(const safetensors *st, const char *name)
{
    char weight[NAME_MAX_LENGTH];
    size_t n = strlen(name), own = strlen(FP8_SCALE_SUFFIX), comfy = strlen(".scale_weight");
    if (n > own && !strcmp(name + n - own, FP8_SCALE_SUFFIX)) {
        snprintf(weight, sizeof weight, "%.*s", (int)(n - own), name);
        if (fp8_is_stored(st, weight)) return 1;
    }
    if (n > comfy && !strcmp(name + n - comfy, ".scale_weight")) {
        snprintf(weight, sizeof weight, "%.*s.weight", (int)(n - comfy), name);
        if (fp8_is_stored(st, weight)) return 1;
    }
    return 0;
}

/* Fails when `name` is not stored as F8 yet has a scale by the conventions
 * above: a scale nothing would apply (e.g. an FP8 file's weight saved again
 * in BF16 with its scale kept) makes the weight silently wrong. */
static int no_stray_scale(const safetensors *st, const char *name)
{
    char candidates[2][NAME_MAX_LENGTH];
    scale_names(name, candidates);
    for (int i = 0; i < 2; i++)
        if (candidates[i][0] && safetensors_dtype_of(st, candidates[i]))
            return error_set("%s: scale tensor \"%s\" belongs to \"%s\", which is %s, not F8_E4M3 or F8_E5M2; "
                             "moedit applies scales to FP8 weights only", safetensors_path(st),
                             candidates[i], name, safetensors_dtype_of(st, name));
    return 0;
}

int fp8_check_scale_of(const safetensors *st, const char *name)
{
    return !safetensors_dtype_of(st, name) || fp8_is_stored(st, name) ? 0 : no_stray_scale(st, name);
}

/* 0 when every value of the F8 tensor `name` (read as F32 into values[count])
 * is finite: a NaN code (E4M3 0x7F/0xFF; E5M2 NaN or infinity) would make
 * rows of every product NaN at run time, far from its cause. */
static int finite_codes(const safetensors *st, const char *name, const float *values, int64_t count)
{
    for (int64_t i = 0; i < count; i++)
        if (!isfinite(values[i]))
            return error_set("%s: FP8 weight \"%s\" holds a %s code at element %lld (a damaged file?)",
                             safetensors_path(st), name, isnan(values[i]) ? "NaN" : "infinite",
                             (long long)i);
    return 0;
}

int fp8_weight_scales(const safetensors *st, const char *name, int64_t rows, float *scales)
{
    char candidates[2][NAME_MAX_LENGTH];
    scale_names(name, candidates);
    for (int64_t r = 0; r < rows; r++) scales[r] = 1.0f;
    for (int i = 0; i < 2; i++) {
        const safetensors_entry *e = candidates[i][0] ? safetensors_find(st, candidates[i]) : NULL;
        if (!e && candidates[i][0] && safetensors_dtype_of(st, candidates[i]))
            return safetensors_require(st, candidates[i]) ? 0 : -1; /* of a dtype moedit does not read */
        if (!e) continue;
        int64_t numel = 1;
        for (int d = 0; d < e->ndim; d++) numel *= e->shape[d];
        int per_tensor = numel == 1 && e->ndim <= 1;
        int per_row = numel == rows && (e->ndim == 1 || (e->ndim == 2 && e->shape[1] == 1));
        /* An integer or F8 scale is no published convention (a damaged or misread file). */
        if (e->dtype != DTYPE_F32 && e->dtype != DTYPE_BF16 && e->dtype != DTYPE_F16)
            return error_set("%s: scale tensor \"%s\" of the FP8 weight \"%s\" has dtype %s; a scale is F32, BF16 "
                             "or F16", e->file, candidates[i], name, safetensors_dtype_of(st, candidates[i]));
        if (!per_tensor && !per_row)
            return error_set("%s: scale tensor \"%s\" of the FP8 weight \"%s\" [%lld rows] must be a scalar, "
                             "[%lld] or [%lld, 1]", e->file, candidates[i], name, (long long)rows, (long long)rows,
                             (long long)rows);
        float one;
        if (safetensors_read_f32(st, candidates[i], e->ndim, e->shape, per_row ? scales : &one)) return -1;
        for (int64_t r = 0; r < rows; r++) {
            if (!per_row) scales[r] = one;
            /* A NaN or infinite scale would make the whole row NaN at run time, far from its cause; a
             * zero or negative one (amax / 448 is never either) silently zeroes or negates the row. */
            if (!isfinite(scales[r]) || !(scales[r] > 0))
                return error_set("%s: scale tensor \"%s\" of the FP8 weight \"%s\" holds %g (row %lld); a scale "
                                 "must be positive and finite", e->file, candidates[i], name, (double)scales[r],
                                 (long long)r);
        }
        return 0;
    }
    return 0;
}

int fp8_read_dequantized(const safetensors *st, const char *name, int64_t rows, int64_t cols, float *dst)
{
    int64_t shape[2] = {rows, cols};
    if (safetensors_read_f32(st, name, cols ? 2 : 1, shape, dst)) return -1;
    if (!fp8_is_stored(st, name)) return no_stray_scale(st, name);
    /* A vector's scale is one per tensor: [rows] would be per element. */
    int64_t count = cols ? rows : 1, width = cols ? cols : rows;
    if (finite_codes(st, name, dst, count * width)) return -1;
    float *scales = malloc((size_t)count * sizeof(float));
    if (!scales) return error_set("out of memory reading the scales of %s", name);
    int status = fp8_weight_scales(st, name, count, scales);
    for (int64_t r = 0; status == 0 && r < count; r++)
        for (int64_t c = 0; c < width; c++) dst[r * width + c] *= scales[r];
    free(scales);
    return status;
}

int fp8_read_quantized(const safetensors *st, const char *name, int64_t rows, int64_t cols, uint8_t *codes,
                       float *scales, float *staging)
{
    const char *dtype = safetensors_dtype_of(st, name);
    if (dtype && !strcmp(dtype, "F8_E4M3")) {
        int64_t shape[2] = {rows, cols};
        const safetensors_entry *e = safetensors_find(st, name);
        int same = e && e->ndim == 2 && e->shape[0] == shape[0] && e->shape[1] == shape[1];
        if (!same) return safetensors_read_f32(st, name, 2, shape, staging); /* its shape error */
        memcpy(codes, e->data, e->nbytes);
        for (int64_t i = 0; i < rows * cols; i++) /* 0x7F / 0xFF: E4M3's NaN (see finite_codes) */
            if ((codes[i] & 0x7F) == 0x7F)
                return error_set("%s: FP8 weight \"%s\" holds a NaN code at element %lld (a damaged file?)", e->file,
                                 name, (long long)i);
        return fp8_weight_scales(st, name, rows, scales);
    }
    if (fp8_read_dequantized(st, name, rows, cols, staging)) return -1;
    f8_quantize_rows(staging, rows, cols, codes, scales);
    return 0;
}
