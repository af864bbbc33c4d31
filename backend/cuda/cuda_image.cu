/* Image ops for the VAE, on x[C, H, W] (one sample, NCHW without N); conv2d
 * lives in cuda_conv.cu.
 *   group_norm_stats  stats[g] = (sum, sum of squares) over group g's
 *                channels, FP64 partial sums per chunk, then a fixed-order
 *                sum per group: deterministic, and partial statistics of
 *                image bands can be all-reduced.
 *   group_norm_apply  y = (x - mean) / sqrt(var + eps) * weight[c] + bias[c],
 *                then SiLU when asked (torch.nn.GroupNorm + SiLU).
 *   upsample_nearest2x  y[c, i, j] = x[c, i / 2, j / 2].
 *   copy_rows    a band of rows of every channel from one image to another. */
#include "backend/cuda/cuda_common.cuh"

#define STATS_THREADS 256

/* partial[g * chunks + chunk] = FP64 (sum, sum of squares) of one chunk of group g. */
__global__ void group_stats_partial_kernel(double *partial, const void *x, int d_x, int64_t group_len,
                                           int64_t chunk_len, int chunks)
{
    __shared__ double sums[STATS_THREADS], squares[STATS_THREADS];
    int g = blockIdx.y, chunk = blockIdx.x;
    int64_t first = (int64_t)chunk * chunk_len, last = first + chunk_len < group_len ? first + chunk_len : group_len;
    const int64_t base = (int64_t)g * group_len;
    double sum = 0.0, square = 0.0;
    for (int64_t i = first + threadIdx.x; i < last; i += blockDim.x) {
        double v = ld(x, d_x, base + i);
        sum += v;
        square += v * v;
    }
    sums[threadIdx.x] = sum;
    squares[threadIdx.x] = square;
    __syncthreads();
    for (int half = STATS_THREADS / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) {
            sums[threadIdx.x] += sums[threadIdx.x + half];
            squares[threadIdx.x] += squares[threadIdx.x + half];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        partial[2 * (g * chunks + chunk)] = sums[0];
        partial[2 * (g * chunks + chunk) + 1] = squares[0];
    }
}

__global__ void group_stats_finish_kernel(void *stats, int d_stats, const double *partial, int groups, int chunks)
{
    int g = blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= groups) return;
    double sum = 0.0, square = 0.0;
    for (int c = 0; c < chunks; c++) {
        sum += partial[2 * (g * chunks + c)];
        square += partial[2 * (g * chunks + c) + 1];
    }
    st(stats, d_stats, 2 * g, (float)sum);
    st(stats, d_stats, 2 * g + 1, (float)square);
}

void cuda_group_norm_stats(backend *be, tensor stats, tensor x, int groups)
{
    cuda_state *s = cuda_of(be);
    int64_t channels = x.shape[0], n = tensor_numel(&x) / channels, group_len = channels / groups * n;
    assert(channels % groups == 0 && tensor_numel(&stats) == 2 * groups);
    int64_t chunks = (group_len + 4095) / 4096, most = 8 * (int64_t)s->sm_count / groups;
    if (chunks > most) chunks = most;
    if (chunks < 1) chunks = 1;
    int64_t chunk_len = (group_len + chunks - 1) / chunks;
    double *partial = (double *)cuda_scratch(s, (size_t)(2 * groups * chunks) * sizeof(double));
    if (!partial) return;
    group_stats_partial_kernel<<<dim3((unsigned)chunks, (unsigned)groups), STATS_THREADS, 0, s->stream>>>(
        partial, x.data, x.dtype, group_len, chunk_len, (int)chunks);
    if (!cuda_launched(s, "group_norm_stats")) return;
    group_stats_finish_kernel<<<(groups + 127) / 128, 128, 0, s->stream>>>(stats.data, stats.dtype, partial, groups,
                                                                            (int)chunks);
    cuda_launched(s, "group_norm_stats (finish)");
}

/* coefficients[c] = (a, b) with y = x a + b for channel c. */
__global__ void group_norm_coefficients_kernel(float *coefficients, const void *stats, int d_stats, double count,
                                               const void *weight, int d_w, const void *bias, int d_b,
                                               int64_t channels, int64_t per_group, float eps)
{
    int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (c >= channels) return;
    int64_t g = c / per_group;
    double mean = ld(stats, d_stats, 2 * g) / count;
    double var = ld(stats, d_stats, 2 * g + 1) / count - mean * mean;
    float inv = (float)(1.0 / sqrt((var > 0 ? var : 0) + eps));
    float scale = inv * (weight ? ld(weight, d_w, c) : 1.0f);
    coefficients[2 * c] = scale;
    coefficients[2 * c + 1] = (bias ? ld(bias, d_b, c) : 0.0f) - (float)mean * scale;
}

/* One channel per grid row (blockIdx.y): no per-element division. */
__global__ void group_norm_apply_kernel(void *y, int d_y, const void *x, int d_x, const float *coefficients,
                                        int64_t n, int silu)
{
    int64_t c = blockIdx.y, base = c * n;
    float a = coefficients[2 * c], b = coefficients[2 * c + 1];
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float v = ld(x, d_x, base + i) * a + b;
        st(y, d_y, base + i, silu ? v / (1.0f + expf(-v)) : v);
    }
}

void cuda_group_norm_apply(backend *be, tensor y, tensor x, tensor stats, int64_t count, tensor weight, tensor bias,
                           float eps, int silu)
{
    cuda_state *s = cuda_of(be);
    int64_t channels = x.shape[0], total = tensor_numel(&x), n = total / channels;
    int groups = (int)tensor_rows(&stats);
    assert(tensor_numel(&y) == total && channels % groups == 0);
    if (total == 0) return;
    float *coefficients = (float *)cuda_scratch(s, (size_t)(2 * channels) * sizeof(float));
    if (!coefficients) return;
    group_norm_coefficients_kernel<<<(unsigned)((channels + 127) / 128), 128, 0, s->stream>>>(
        coefficients, stats.data, stats.dtype, (double)count, weight.data, weight.dtype, bias.data, bias.dtype,
        channels, channels / groups, eps);
    if (!cuda_launched(s, "group_norm_apply (coefficients)")) return;
    int64_t row_blocks = (n + CUDA_THREADS - 1) / CUDA_THREADS;
    for (int64_t first = 0; first < channels; first += 65535) { /* a grid's y extent */
        int64_t rows = channels - first < 65535 ? channels - first : 65535;
        int64_t blocks = cuda_blocks(s, total) / rows; /* about 16 blocks per multiprocessor in all */
        blocks = blocks < 1 ? 1 : blocks > row_blocks ? row_blocks : blocks;
        group_norm_apply_kernel<<<dim3((unsigned)blocks, (unsigned)rows), CUDA_THREADS, 0, s->stream>>>(
            (char *)y.data + (size_t)(first * n) * dtype_size(y.dtype), y.dtype,
            (const char *)x.data + (size_t)(first * n) * dtype_size(x.dtype), x.dtype, coefficients + 2 * first, n, silu);
    }
    cuda_launched(s, "group_norm_apply");
}

/* One output row per grid row (blockIdx.y = c * 2h + oy, strided): no
 * per-element division. */
__global__ void upsample_nearest2x_kernel(void *y, int d_y, const void *x, int d_x, int64_t out_rows, int h, int w)
{
    for (int64_t r = blockIdx.y; r < out_rows; r += gridDim.y) {
        int64_t c = r / (2 * h), oy = r % (2 * h);
        const int64_t in = (c * h + oy / 2) * w, out = r * 2 * w;
        for (int ox = blockIdx.x * blockDim.x + threadIdx.x; ox < 2 * w; ox += gridDim.x * blockDim.x)
            st(y, d_y, out + ox, ld(x, d_x, in + ox / 2));
    }
}

void cuda_upsample_nearest2x(backend *be, tensor y, tensor x)
{
    cuda_state *s = cuda_of(be);
    int64_t channels = x.shape[0], h = x.shape[1], w = x.shape[2];
    assert(x.ndim == 3 && tensor_numel(&y) == channels * 4 * h * w);
    if (channels * h * w == 0) return;
    int64_t out_rows = channels * 2 * h;
    dim3 grid((unsigned)((2 * w + CUDA_THREADS - 1) / CUDA_THREADS), (unsigned)(out_rows < 65535 ? out_rows : 65535));
    upsample_nearest2x_kernel<<<grid, CUDA_THREADS, 0, s->stream>>>(y.data, y.dtype, x.data, x.dtype, out_rows, (int)h,
                                                                    (int)w);
    cuda_launched(s, "upsample_nearest2x");
}

/* One channel per grid row (strided past 65535); the band of a channel is
 * contiguous in both images. Raw element copies: y and x share the dtype. */
__global__ void copy_rows_kernel(char *y, int64_t y_channel_bytes, const char *x, int64_t x_channel_bytes,
                                 int64_t channels, int64_t band_bytes)
{
    for (int64_t c = blockIdx.y; c < channels; c += gridDim.y) {
        char *to = y + c * y_channel_bytes;
        const char *from = x + c * x_channel_bytes;
        for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < band_bytes / 2;
             i += (int64_t)gridDim.x * blockDim.x)
            ((uint16_t *)to)[i] = ((const uint16_t *)from)[i];
    }
}

void cuda_copy_rows(backend *be, tensor y, int64_t y_row, tensor x, int64_t x_row, int64_t rows)
{
    cuda_state *s = cuda_of(be);
    int64_t channels = x.shape[0], width = x.shape[2], element = (int64_t)dtype_size(x.dtype);
    assert(y.ndim == 3 && x.ndim == 3 && y.shape[0] == channels && y.shape[2] == width && y.dtype == x.dtype);
    assert(y_row + rows <= y.shape[1] && x_row + rows <= x.shape[1] && element % 2 == 0);
    int64_t band_bytes = rows * width * element;
    if (channels == 0 || band_bytes == 0) return;
    int64_t blocks = (band_bytes / 2 + CUDA_THREADS - 1) / CUDA_THREADS;
    dim3 grid((unsigned)(blocks < 1024 ? blocks : 1024), (unsigned)(channels < 65535 ? channels : 65535));
    copy_rows_kernel<<<grid, CUDA_THREADS, 0, s->stream>>>(
        (char *)y.data + y_row * width * element, y.shape[1] * width * element,
        (const char *)x.data + x_row * width * element, x.shape[1] * width * element, channels, band_bytes);
    cuda_launched(s, "copy_rows");
}
