/* LoRA adapters merged into a model's weights as they load.
 *
 * A LoRA file (safetensors) holds, for some weight W [out, in] of the model,
 * a pair of low-rank factors and optionally an alpha:
 *   <base>.lora_A.weight [r, in]   and   <base>.lora_B.weight [out, r]   (diffusers / PEFT)
 *   <base>.lora_down.weight         and   <base>.lora_up.weight            (the same pair, kohya's names)
 *   <base>.alpha                    a scalar; without it alpha = r
 * with <base> the weight's name without ".weight", optionally prefixed by
 * "transformer." (diffusers) or "diffusion_model." (ComfyUI). Loading W then
 * gives
 *   W + scale * (alpha / r) * B A
 * computed in float32 on the host before the weight is split over ranks and
 * converted to the device's dtype, so every layout merges the same values.
 * diffusers' load_lora_weights + fuse_lora(lora_scale=scale) computes this
 * sum. */
#ifndef MOEDIT_IO_LORA_H
#define MOEDIT_IO_LORA_H

#include "io/safetensors.h"

#include <stdint.h>

typedef struct lora_set lora_set;

/* Reads the file's tensor list (no weights yet). Fails naming the file and
 * tensor: a name that is none of the forms above, a factor without its
 * partner, factors whose ranks differ, an alpha that is not one value, a
 * scale that is not finite. */
int lora_open(lora_set **out, const char *path, double scale);

/* If the set adapts the weight `name` ("<base>.weight", full shape [rows, cols]):
 * checks the factors' shapes against it and adds scale * (alpha / r) * B A to
 * w (host float32, row-major). Other names: nothing. Fails naming the tensor. */
int lora_apply(lora_set *l, const char *name, float *w, int64_t rows, int64_t cols);

/* 0 when every pair of the file adapts a weight of `model` (a safetensors
 * set, `what` names it in errors) of the factors' shape; else names the first
 * that does not: a LoRA made for another model. Checked against the whole
 * file, not against what a rank loads (with expert parallelism a rank loads
 * only its experts). */
int lora_check_model(const lora_set *l, const safetensors *model, const char *what);

/* Pairs in the set. */
int lora_count(const lora_set *l);

void lora_close(lora_set *l);

#endif
