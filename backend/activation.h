/* The activations of the text encoders' feed-forward layers, the `act`
 * argument of backend_ops.activation (backend/backend.h); plain C shared with
 * the CUDA backend's .cu files (backend/cuda/cuda_ops.h):
 *   BACKEND_GELU        x / 2 * (1 + erf(x / sqrt(2)))                        torch's gelu (CLIP-G)
 *   BACKEND_GELU_TANH   x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3)))  gelu_new (T5 v1.1)
 *   BACKEND_QUICK_GELU  x * sigmoid(1.702 x)                                  quick_gelu (CLIP-L) */
#ifndef MOEDIT_BACKEND_ACTIVATION_H
#define MOEDIT_BACKEND_ACTIVATION_H

typedef enum { BACKEND_GELU = 0, BACKEND_GELU_TANH, BACKEND_QUICK_GELU } backend_activation;

#endif
