/* FP8 weights in safetensors files: what moedit writes (`moedit quantize`)
 * and the conventions of published FP8 checkpoints it reads (docs/fp8.md).
 *
 * A weight "X.weight" stored as F8_E4M3 or F8_E5M2 has real values
 * code * scale, the scale found, in this order, as
 *   X.weight_scale  F32/BF16/F16, [rows] or [rows, 1] (per output channel:
 *                   moedit's own, and compressed-tensors / FBGEMM checkpoints),
 *                   or [] / [1] (per tensor: ComfyUI's current FP8 format)
 *   X.scale_weight  [] / [1] (per tensor: ComfyUI's older "scaled_fp8" files)
 *   none            scale 1 (weights cast to FP8 as they are)
 * Activation scales stored beside them (input_scale, scale_input) are not
 * read: moedit computes each row's scale as it runs. */
#ifndef MOEDIT_IO_FP8_WEIGHTS_H
#define MOEDIT_IO_FP8_WEIGHTS_H

#include "io/safetensors.h"

/* The suffix moedit writes: "X.weight" -> "X.weight_scale" (F32 [rows]). */
#define FP8_SCALE_SUFFIX "_scale"

/* 1 if `name`'s dtype is F8_E4M3 or F8_E5M2. */
int fp8_is_stored(const safetensors *st, const char *name);

/* 1 if `name` is the scale of an F8 weight of st by one of the conventions
 * above (so copies and summaries treat it with its weight). */
int fp8_is_scale_name(const safetensors *st, const char *name);

/* Fails (naming both) when tensor `name` exists, is not F8 and yet has a
 * scale tensor by the conventions above; 0 otherwise. */
int fp8_check_scale_of(const safetensors *st, const char *name);

/* scales[rows] of the F8 weight `name` [rows, cols] (1 when it has none).
 * Fails naming the tensor when a scale tensor has another shape, a dtype
 * other than F32/BF16/F16, or holds a NaN, infinity, zero or negative value. */
int fp8_weight_scales(const safetensors *st, const char *name, int64_t rows, float *scales);

/* `name` [rows, cols] (cols 0: a vector) as F32 values: read as
 * safetensors_read_f32, and an F8 tensor times its scales. Fails on an F8
 * tensor holding a NaN or infinite code, and on a scale beside a tensor that
 * is not F8 (fp8_check_scale_of). */
int fp8_read_dequantized(const safetensors *st, const char *name, int64_t rows, int64_t cols, float *dst);

/* `name` [rows, cols] as E4M3 codes and F32 scales per row: an F8_E4M3
 * tensor as stored (codes and scales as they are, nothing requantized; a NaN
 * code 0x7F/0xFF fails naming the tensor);
 * anything else read as F32 values (fp8_read_dequantized; `staging` holds
 * rows * cols floats) and quantized per row (core/float8.h). */
int fp8_read_quantized(const safetensors *st, const char *name, int64_t rows, int64_t cols, uint8_t *codes,
                       float *scales, float *staging);

#endif
