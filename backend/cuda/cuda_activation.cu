/* The text encoders' feed-forward activations, FP32 arithmetic in registers
 * (backend/backend.h's backend_activation):
 *   GELU        y = x / 2 * (1 + erf(x / sqrt(2)))
 *   GELU_TANH   y = x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3)))
 *   QUICK_GELU  y = x * sigmoid(1.702 x)
 * each times up[i] when up is given (T5's gated feed-forward: act(wi_0 h) *
 * wi_1 h). In place is fine: each thread reads then writes its own element. */
#include "backend/cuda/cuda_common.cuh"

__device__ __forceinline__ float activation_f(float x, int act)
{
    if (act == BACKEND_GELU_TANH) return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    if (act == BACKEND_QUICK_GELU) return x / (1.0f + expf(-1.702f * x));
    return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
}

__global__ void activation_kernel(void *y, int dy, const void *x, int dx, const void *up, int du, int64_t n, int act)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float value = activation_f(ld(x, dx, i), act);
        st(y, dy, i, up ? value * ld(up, du, i) : value);
    }
}

void cuda_activation(backend *be, tensor y, tensor x, tensor up, backend_activation act)
{
    cuda_state *s = cuda_of(be);
    int64_t n = tensor_numel(&y);
    assert(tensor_numel(&x) == n && (!up.data || tensor_numel(&up) == n));
    if (n == 0) return;
    activation_kernel<<<cuda_blocks(s, n), CUDA_THREADS, 0, s->stream>>>(y.data, y.dtype, x.data, x.dtype, up.data,
                                                                         up.dtype, n, (int)act);
    cuda_launched(s, "activation");
}
