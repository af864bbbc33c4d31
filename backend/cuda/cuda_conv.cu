/* conv2d on the CUDA backend: y[Cout, Ho, Wo] = conv(x[Cin, H, W]) with
 * w [Cout, Cin*k*k] (PyTorch's [Cout, Cin, k, k] flattened), bias [Cout] or
 * none, zero padding {top, bottom, left, right} (torch.nn.Conv2d on
 * F.pad(x, (left, right, top, bottom))) and a stride.
 *
 * cuDNN first (when built with it): the legacy cudnnConvolutionForward on
 * NCHW tensors of one sample, FP32 accumulation, for x, w and y of one half
 * dtype (BF16 or F16). cuDNN pads symmetrically per axis, so the padding is
 * split: min(top, bottom) and min(left, right) go to cuDNN, and only the
 * remainder (asymmetric downsampling's {0, 1, 0, 1}) is written explicitly
 * into scratch; halo bands {0, 0, 1, 1} need no copy. The algorithm is chosen
 * once per shape and device (the first deterministic one within the workspace
 * limit that cuDNN's heuristics list) and kept in a small cache with its
 * descriptors; the workspace at run time comes from the backend's scratch
 * buffer, in stream order. Not by timing (FindEx) by default: the fastest
 * algorithm changes from run to run when two are close, and different
 * algorithms round differently, so the same seed gave different images
 * (seen on an H200).
 *
 * im2col + cuBLASLt otherwise, and whenever cuDNN declines a shape: columns
 * are built a band of output rows at a time into scratch (bounded memory),
 * then one product per band; a 1x1 stride-1 unpadded convolution is a plain
 * product on x.
 *
 * Either way the bias is added afterwards by one pass over y, one channel per
 * grid row (PyTorch adds conv bias the same way on its cuDNN path).
 *
 * Environment: MOEDIT_CUDNN=nhwc (the default) hands cuDNN channels-last
 * copies of the input and filter and transposes its output back (its NHWC
 * tensor-core kernels, the layout PyTorch's fast path uses; costs two
 * transposes per convolution instead of im2col's 9x columns), algorithms by
 * cudnnGetConvolutionForwardAlgorithm_v7's heuristics; =nhwc-find times every
 * candidate with FindEx on first use instead (not reproducible, see above);
 * MOEDIT_CUDNN=0 forces im2col; =1 runs cuDNN on NCHW with FindEx, =heuristic
 * on NCHW with the heuristics; any other value warns and uses the default.
 * MOEDIT_CUDNN_LOG=1 prints each choice. */
#include "backend/cuda/cuda_common.cuh"
#include "core/env_choice.h"

#ifdef MOEDIT_HAVE_CUDNN
#include <cudnn.h>

#include <mutex>
#include <stdio.h>
#include <stdlib.h>
#endif

#include <limits.h>

#define COLUMN_BYTES ((size_t)256 << 20)

/* ---- im2col + cuBLASLt ----------------------------------------------- */

#define IM2COL_RUN 8 /* consecutive output pixels per thread: one 16-byte store of BF16 */
#define IM2COL_THREADS 128

/* columns[p, row * wo + ox] for output rows first_row + row, p = (c * k + ky)
 * * k + kx. A block serves one output row (blockIdx.y), one kernel offset
 * (ky, kx) = blockIdx.z and IM2COL_THREADS * IM2COL_RUN pixels of it; each
 * thread walks all channels for its run of pixels, so no thread divides a
 * flat index and each block moves enough to hide its launch. (The first
 * version divided a 64-bit index seven times per element; the second gave
 * each thread one element and was still launch-bound, many times slower
 * than the product it feeds: docs/benchmarks.md, "Figures cited by source
 * comments".)
 * `vector`: columns BF16, wo and band_pixels multiples of IM2COL_RUN,
 * columns 16-byte aligned: runs are written as one 16-byte store. */
__global__ void __launch_bounds__(IM2COL_THREADS)
    im2col_kernel(void *columns, int d_col, const void *x, int d_x, int channels, int h, int w, int kernel,
                  int stride, int pad_top, int pad_left, int wo, int first_row, int64_t band_pixels, int vector)
{
    int ox0 = (blockIdx.x * IM2COL_THREADS + threadIdx.x) * IM2COL_RUN, row = blockIdx.y;
    if (ox0 >= wo) return;
    int ky = blockIdx.z / kernel, kx = blockIdx.z % kernel, taps = kernel * kernel;
    int iy = (first_row + row) * stride - pad_top + ky, ix0 = ox0 * stride - pad_left + kx;
    int run = wo - ox0 < IM2COL_RUN ? wo - ox0 : IM2COL_RUN;
    int row_inside = iy >= 0 && iy < h;
    int64_t out = (int64_t)row * wo + ox0;
    for (int c = 0; c < channels; c++) {
        int64_t in = ((int64_t)c * h + iy) * w;
        int64_t at = (int64_t)(c * taps + blockIdx.z) * band_pixels + out;
        float values[IM2COL_RUN];
#pragma unroll
        for (int j = 0; j < IM2COL_RUN; j++) {
            int ix = ix0 + j * stride;
            values[j] = j < run && row_inside && ix >= 0 && ix < w ? ld(x, d_x, in + ix) : 0.0f;
        }
        if (vector) {
            uint4 packed;
            __nv_bfloat162 *pair = (__nv_bfloat162 *)&packed;
#pragma unroll
            for (int j = 0; j < IM2COL_RUN / 2; j++) pair[j] = __floats2bfloat162_rn(values[2 * j], values[2 * j + 1]);
            *(uint4 *)((__nv_bfloat16 *)columns + at) = packed;
        } else {
            for (int j = 0; j < run; j++) st(columns, d_col, at + j, values[j]);
        }
    }
}

/* y = conv(x) without bias; 0 on a failure already recorded. */
static int conv2d_im2col(cuda_state *s, tensor y, tensor x, tensor w, int kernel, int stride, const int pad[4])
{
    int64_t cin = x.shape[0], h = x.shape[1], wi = x.shape[2];
    int64_t cout = y.shape[0], ho = y.shape[1], wo = y.shape[2];
    int64_t patch = cin * kernel * kernel, pixels = ho * wo;
    cuda_matrix weights = {w.data, w.dtype, patch};
    size_t y_element = dtype_size(y.dtype);
    int plain = kernel == 1 && stride == 1 && !pad[0] && !pad[1] && !pad[2] && !pad[3] && x.dtype == w.dtype;
    if (plain) {
        cuda_matrix input = {x.data, x.dtype, pixels};
        cuda_gemm(s, y.data, y.dtype, pixels, weights, input, 0, cout, pixels, cin, cuda_tensor_none());
        return 1;
    }
    size_t row_bytes = (size_t)(patch * wo) * dtype_size(w.dtype);
    int64_t band = (int64_t)(COLUMN_BYTES / (row_bytes ? row_bytes : 1));
    if (band < 1) band = 1;
    if (band > ho) band = ho;
    if (band > 65535) band = 65535; /* a grid's y extent */
    void *columns = cuda_scratch(s, (size_t)band * row_bytes);
    if (!columns) return 0;
    for (int64_t first = 0; first < ho; first += band) {
        int64_t rows = ho - first < band ? ho - first : band, band_pixels = rows * wo;
        int64_t pixels_per_block = (int64_t)IM2COL_THREADS * IM2COL_RUN;
        int vector = w.dtype == DTYPE_BF16 && wo % IM2COL_RUN == 0 && band_pixels % IM2COL_RUN == 0 &&
                     ((uintptr_t)columns & 15) == 0;
        dim3 grid((unsigned)((wo + pixels_per_block - 1) / pixels_per_block), (unsigned)rows,
                  (unsigned)(kernel * kernel));
        im2col_kernel<<<grid, IM2COL_THREADS, 0, s->stream>>>(columns, w.dtype, x.data, x.dtype, (int)cin, (int)h,
                                                              (int)wi, kernel, stride, pad[0], pad[2], (int)wo,
                                                              (int)first, band_pixels, vector);
        if (!cuda_launched(s, "conv2d (im2col)")) return 0;
        cuda_matrix cols = {columns, w.dtype, band_pixels};
        cuda_gemm(s, (char *)y.data + (size_t)(first * wo) * y_element, y.dtype, pixels, weights, cols, 0, cout,
                  band_pixels, patch, cuda_tensor_none());
    }
    return 1;
}

/* ---- bias -------------------------------------------------------------- */

/* y[c, :] += bias[c] for c = blockIdx.y; eight BF16 values per 16-byte access
 * when `vector` (y BF16, 16-byte aligned, pixels a multiple of 8). */
__global__ void conv_bias_kernel(void *y, int d_y, const void *bias, int d_b, int64_t pixels, int vector)
{
    int64_t c = blockIdx.y;
    float b = ld(bias, d_b, c);
    int64_t step = (int64_t)gridDim.x * blockDim.x, first = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (vector) {
        uint4 *row = (uint4 *)((__nv_bfloat16 *)y + c * pixels);
        for (int64_t i = first; i < pixels / 8; i += step) {
            uint4 v = row[i];
            __nv_bfloat162 *pair = (__nv_bfloat162 *)&v;
#pragma unroll
            for (int k = 0; k < 4; k++) {
                float2 f = __bfloat1622float2(pair[k]);
                pair[k] = __floats2bfloat162_rn(f.x + b, f.y + b);
            }
            row[i] = v;
        }
    } else {
        for (int64_t i = first; i < pixels; i += step) st(y, d_y, c * pixels + i, ld(y, d_y, c * pixels + i) + b);
    }
}

static void conv_add_bias(cuda_state *s, tensor y, tensor bias, int64_t cout, int64_t pixels)
{
    if (!bias.data) return;
    if (cout > 65535) { /* beyond a grid's rows: the generic kernel */
        cuda_add_bias_rows(s, y.data, y.dtype, bias, cout, pixels, pixels);
        return;
    }
    int vector = y.dtype == DTYPE_BF16 && pixels % 8 == 0 && ((uintptr_t)y.data & 15) == 0;
    int64_t work = vector ? pixels / 8 : pixels, blocks = (work + CUDA_THREADS - 1) / CUDA_THREADS;
    if (blocks > 1024) blocks = 1024;
    conv_bias_kernel<<<dim3((unsigned)blocks, (unsigned)cout), CUDA_THREADS, 0, s->stream>>>(
        y.data, y.dtype, bias.data, bias.dtype, pixels, vector);
    cuda_launched(s, "conv2d (bias)");
}

/* ---- cuDNN ------------------------------------------------------------- */

#ifdef MOEDIT_HAVE_CUDNN

#define PLAN_SLOTS 64
#define MAX_DEVICES 64
#define FIND_WORKSPACE ((size_t)256 << 20) /* most workspace an algorithm may ask for */
#define MAX_ALGOS 16

/* The shape cuDNN sees: x [cin, h, w] after explicit padding, symmetric pads. */
typedef struct conv_key {
    int cin, h, w, cout, kernel, stride, pad_h, pad_w, dtype, nhwc;
} conv_key;

typedef struct conv_plan {
    conv_key key;
    int used;
    int chosen; /* an algorithm was looked for */
    int usable; /* ... and found: otherwise im2col serves this shape */
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    cudnnConvolutionFwdAlgo_t algo;
    size_t workspace;
} conv_plan;

/* One handle per device, shared by the backends on it (the stream is set per
 * call); never destroyed, as the cuBLASLt cache of a state would be. */
typedef struct cudnn_device {
    int tried;
    cudnnHandle_t handle;
    conv_plan plans[PLAN_SLOTS];
    int next_evict;
} cudnn_device;

static std::mutex cudnn_lock;
static cudnn_device *cudnn_devices[MAX_DEVICES];

/* Bits of the mode: cuDNN at all, channels-last tensors, algorithms timed. */
enum { CUDNN_ON = 1, CUDNN_NHWC = 2, CUDNN_FIND = 4 };

static int cudnn_mode(void)
{
    static int mode = -1;
    if (mode < 0) {
        /* Channels-last cuDNN by default: the fastest of the modes below for
         * the VAE decode, and the heuristics' choice is as fast as a timed
         * one (docs/benchmarks.md, "Figures cited by source comments"). */
        static const char *const choices[5] = {"nhwc", "0", "1", "heuristic", "nhwc-find"};
        static const int modes[5] = {CUDNN_ON | CUDNN_NHWC, 0, CUDNN_ON | CUDNN_FIND, CUDNN_ON,
                                     CUDNN_ON | CUDNN_NHWC | CUDNN_FIND};
        static int warned;
        mode = modes[env_choice("MOEDIT_CUDNN", choices, 5, 0, &warned)];
    }
    return mode;
}

static int cudnn_logging(void)
{
    static int log = -1;
    if (log < 0) log = getenv("MOEDIT_CUDNN_LOG") && atoi(getenv("MOEDIT_CUDNN_LOG")) == 1;
    return log;
}

static cudnn_device *cudnn_device_of(cuda_state *s)
{
    if (s->device < 0 || s->device >= MAX_DEVICES) return NULL;
    cudnn_device *d = cudnn_devices[s->device];
    if (!d) {
        d = (cudnn_device *)calloc(1, sizeof *d);
        if (!d) return NULL;
        cudnn_devices[s->device] = d;
    }
    if (!d->tried) {
        d->tried = 1;
        cudnnStatus_t status = cudnnCreate(&d->handle);
        if (status != CUDNN_STATUS_SUCCESS) {
            d->handle = NULL;
            cudaGetLastError();
            if (cudnn_logging())
                fprintf(stderr, "moedit: cuDNN unavailable on cuda:%d (%s): convolutions use im2col\n", s->device,
                        cudnnGetErrorString(status));
        }
    }
    return d->handle ? d : NULL;
}

static void plan_release(conv_plan *p)
{
    if (!p->used) return;
    if (p->x) cudnnDestroyTensorDescriptor(p->x);
    if (p->y) cudnnDestroyTensorDescriptor(p->y);
    if (p->w) cudnnDestroyFilterDescriptor(p->w);
    if (p->conv) cudnnDestroyConvolutionDescriptor(p->conv);
    memset(p, 0, sizeof *p);
}

/* Descriptors for the key; 0 when cuDNN refuses them or disagrees on the output. */
static int plan_describe(conv_plan *p, int ho, int wo)
{
    const conv_key *k = &p->key;
    cudnnDataType_t type = k->dtype == DTYPE_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
    cudnnTensorFormat_t format = k->nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    int n = 0, c = 0, h = 0, w = 0;
    if (cudnnCreateTensorDescriptor(&p->x) != CUDNN_STATUS_SUCCESS ||
        cudnnCreateTensorDescriptor(&p->y) != CUDNN_STATUS_SUCCESS ||
        cudnnCreateFilterDescriptor(&p->w) != CUDNN_STATUS_SUCCESS ||
        cudnnCreateConvolutionDescriptor(&p->conv) != CUDNN_STATUS_SUCCESS)
        return 0;
    return cudnnSetTensor4dDescriptor(p->x, format, type, 1, k->cin, k->h, k->w) == CUDNN_STATUS_SUCCESS &&
           cudnnSetFilter4dDescriptor(p->w, type, format, k->cout, k->cin, k->kernel, k->kernel) ==
               CUDNN_STATUS_SUCCESS &&
           cudnnSetConvolution2dDescriptor(p->conv, k->pad_h, k->pad_w, k->stride, k->stride, 1, 1,
                                           CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT) == CUDNN_STATUS_SUCCESS &&
           cudnnSetConvolutionMathType(p->conv, CUDNN_TENSOR_OP_MATH) == CUDNN_STATUS_SUCCESS &&
           cudnnSetTensor4dDescriptor(p->y, format, type, 1, k->cout, ho, wo) == CUDNN_STATUS_SUCCESS &&
           cudnnGetConvolution2dForwardOutputDim(p->conv, p->x, p->w, &n, &c, &h, &w) == CUDNN_STATUS_SUCCESS &&
           n == 1 && c == k->cout && h == ho && w == wo;
}

static conv_plan *plan_lookup(cudnn_device *d, const conv_key *key, int ho, int wo)
{
    for (int i = 0; i < PLAN_SLOTS; i++)
        if (d->plans[i].used && !memcmp(&d->plans[i].key, key, sizeof *key)) return &d->plans[i];
    conv_plan *p = NULL;
    for (int i = 0; i < PLAN_SLOTS && !p; i++)
        if (!d->plans[i].used) p = &d->plans[i];
    if (!p) { /* full: evict round-robin */
        p = &d->plans[d->next_evict];
        d->next_evict = (d->next_evict + 1) % PLAN_SLOTS;
        plan_release(p);
    }
    p->used = 1;
    p->key = *key;
    if (!plan_describe(p, ho, wo)) p->chosen = 1; /* usable stays 0: im2col */
    return p;
}

/* The workspace cuDNN may ask for: FIND_WORKSPACE, or a quarter of free memory. */
static size_t workspace_limit(void)
{
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return free_bytes / 4 < FIND_WORKSPACE ? free_bytes / 4 : FIND_WORKSPACE;
}

/* Picks p's algorithm: by timing every candidate on these buffers (find) or by
 * cuDNN's heuristics. Marks p usable on success. */
static void plan_choose(cuda_state *s, cudnn_device *d, conv_plan *p, const void *x, const void *w, void *y)
{
    p->chosen = 1;
    cudnnConvolutionFwdAlgoPerf_t perf[MAX_ALGOS];
    int returned = 0;
    size_t limit = workspace_limit();
    cudnnStatus_t status;
    if (!(cudnn_mode() & CUDNN_FIND)) {
        status = cudnnGetConvolutionForwardAlgorithm_v7(d->handle, p->x, p->w, p->conv, p->y, MAX_ALGOS, &returned,
                                                        perf);
    } else {
        void *workspace = NULL;
        size_t bytes = limit;
        while (bytes >= ((size_t)1 << 20) && cudaMalloc(&workspace, bytes) != cudaSuccess) {
            cudaGetLastError(); /* not sticky: try less */
            workspace = NULL;
            bytes /= 2;
        }
        if (!workspace) bytes = 0;
        limit = bytes;
        /* The inputs were enqueued on the stream; the search runs kernels of its own. */
        if (!cuda_ok(s, cudaStreamSynchronize(s->stream), "conv2d (cuDNN search)")) {
            cudaFree(workspace);
            return;
        }
        status = cudnnFindConvolutionForwardAlgorithmEx(d->handle, p->x, x, p->w, w, p->conv, p->y, y, MAX_ALGOS,
                                                        &returned, perf, workspace, bytes);
        cudaFree(workspace);
    }
    cudaGetLastError();
    if (status != CUDNN_STATUS_SUCCESS) returned = 0;
    const cudnnConvolutionFwdAlgoPerf_t *best = NULL;
    for (int i = 0; i < returned && !best; i++)
        if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].determinism == CUDNN_DETERMINISTIC &&
            perf[i].memory <= limit)
            best = &perf[i];
    size_t workspace = 0;
    if (best && cudnnSetConvolutionMathType(p->conv, best->mathType) == CUDNN_STATUS_SUCCESS &&
        cudnnGetConvolutionForwardWorkspaceSize(d->handle, p->x, p->w, p->conv, p->y, best->algo, &workspace) ==
            CUDNN_STATUS_SUCCESS) {
        p->usable = 1;
        p->algo = best->algo;
        p->workspace = workspace > best->memory ? workspace : best->memory;
    }
    if (cudnn_logging()) {
        const conv_key *k = &p->key;
        if (p->usable)
            fprintf(stderr,
                    "moedit: cuDNN conv %dx%dx%d -> %d k%d s%d pad %d,%d: algo %d math %d, %.3f ms, workspace %zu KiB\n",
                    k->cin, k->h, k->w, k->cout, k->kernel, k->stride, k->pad_h, k->pad_w, (int)p->algo,
                    (int)best->mathType, best->time, p->workspace >> 10);
        else
            fprintf(stderr, "moedit: cuDNN conv %dx%dx%d -> %d k%d s%d pad %d,%d declined (%s, %d candidates)\n",
                    k->cin, k->h, k->w, k->cout, k->kernel, k->stride, k->pad_h, k->pad_w,
                    cudnnGetErrorString(status), returned);
    }
}

/* dst[c, i, j] = src[c, i - top, j - left] inside src, else 0 (16-bit elements). */
__global__ void conv_pad_kernel(uint16_t *dst, const uint16_t *src, int channels, int h, int w, int hp, int wp,
                                int top, int left)
{
    int64_t n = (int64_t)channels * hp * wp; /* < 2^31: checked by the caller */
    for (int64_t at = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; at < n; at += (int64_t)gridDim.x * blockDim.x) {
        int e = (int)at, j = e % wp, i = e / wp % hp, c = e / (wp * hp);
        int iy = i - top, ix = j - left;
        dst[e] = iy >= 0 && iy < h && ix >= 0 && ix < w ? src[((int64_t)c * h + iy) * w + ix] : (uint16_t)0;
    }
}

/* w_krsc[o, t, c] = w[o, c, t]: PyTorch's [Cout, Cin, k, k] filter in the
 * channels-last order cuDNN's NHWC kernels read (16-bit elements). */
__global__ void filter_to_krsc_kernel(uint16_t *dst, const uint16_t *src, int cout, int cin, int taps)
{
    int64_t n = (int64_t)cout * cin * taps;
    for (int64_t at = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; at < n; at += (int64_t)gridDim.x * blockDim.x) {
        int64_t t = at % taps, c = at / taps % cin, o = at / ((int64_t)taps * cin);
        dst[(o * taps + t) * cin + c] = src[at];
    }
}

static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

static int fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

/* What cuDNN reads and writes, carved from the scratch buffer in this order:
 * the padded input (when the padding is asymmetric), and for NHWC the input,
 * filter and output in channels-last order, then the workspace. */
typedef struct cudnn_buffers {
    size_t pad_bytes, x_bytes, w_bytes, y_bytes;
    const void *x, *w;
    void *y, *workspace;
} cudnn_buffers;

static size_t buffers_bytes(const cudnn_buffers *b) { return b->pad_bytes + b->x_bytes + b->w_bytes + b->y_bytes; }

/* Lays the buffers out over `base` and writes the inputs there (padding,
 * channels-last copies); 0 when a launch failed. */
static int buffers_fill(cuda_state *s, cudnn_buffers *b, char *base, const conv_key *k, tensor y, tensor x, tensor w,
                        int top, int left)
{
    int64_t h = x.shape[1], wi = x.shape[2], pixels = (int64_t)k->h * k->w;
    b->x = x.data;
    b->w = w.data;
    b->y = y.data;
    if (b->pad_bytes) {
        conv_pad_kernel<<<cuda_blocks(s, (int64_t)k->cin * pixels), CUDA_THREADS, 0, s->stream>>>(
            (uint16_t *)base, (const uint16_t *)x.data, k->cin, (int)h, (int)wi, k->h, k->w, top, left);
        if (!cuda_launched(s, "conv2d (pad)")) return 0;
        b->x = base;
    }
    if (k->nhwc) {
        char *xn = base + b->pad_bytes, *wn = xn + b->x_bytes;
        cuda_transpose_on(s, xn, x.dtype, b->x, x.dtype, k->cin, pixels);
        int64_t taps = (int64_t)k->kernel * k->kernel;
        filter_to_krsc_kernel<<<cuda_blocks(s, tensor_numel(&w)), CUDA_THREADS, 0, s->stream>>>(
            (uint16_t *)wn, (const uint16_t *)w.data, k->cout, k->cin, (int)taps);
        if (!cuda_launched(s, "conv2d (filter to KRSC)")) return 0;
        b->x = xn;
        b->w = wn;
        b->y = wn + b->w_bytes;
    }
    b->workspace = base + buffers_bytes(b);
    return !s->failed;
}

/* 1: y = conv(x) without bias was enqueued; 0: cuDNN declined (nothing
 * enqueued that matters, use im2col); -1: a failure is recorded. */
static int conv2d_cudnn(cuda_state *s, tensor y, tensor x, tensor w, int kernel, int stride, const int pad[4])
{
    int mode = cudnn_mode();
    if (!(mode & CUDNN_ON)) return 0;
    if ((x.dtype != DTYPE_BF16 && x.dtype != DTYPE_F16) || w.dtype != x.dtype || y.dtype != x.dtype) return 0;
    int64_t cin = x.shape[0], h = x.shape[1], wi = x.shape[2], cout = y.shape[0], ho = y.shape[1], wo = y.shape[2];
    if (pad[0] < 0 || pad[1] < 0 || pad[2] < 0 || pad[3] < 0 || cin < 1) return 0;
    int pad_h = pad[0] < pad[1] ? pad[0] : pad[1], pad_w = pad[2] < pad[3] ? pad[2] : pad[3];
    int top = pad[0] - pad_h, bottom = pad[1] - pad_h, left = pad[2] - pad_w, right = pad[3] - pad_w;
    int64_t hp = h + top + bottom, wp = wi + left + right;
    if (!fits_int(cin * hp * wp) || !fits_int(cout * ho * wo) || !fits_int(tensor_numel(&w))) return 0;
    int nhwc = (mode & CUDNN_NHWC) != 0;
    cudnn_buffers buffers;
    memset(&buffers, 0, sizeof buffers);
    buffers.pad_bytes = top || bottom || left || right ? round_up((size_t)(cin * hp * wp) * 2, 256) : 0;
    if (nhwc) {
        buffers.x_bytes = round_up((size_t)(cin * hp * wp) * 2, 256);
        buffers.w_bytes = round_up((size_t)tensor_numel(&w) * 2, 256);
        buffers.y_bytes = round_up((size_t)(cout * ho * wo) * 2, 256);
    }

    std::lock_guard<std::mutex> guard(cudnn_lock);
    cudnn_device *d = cudnn_device_of(s);
    if (!d) return 0;
    conv_key key;
    memset(&key, 0, sizeof key);
    key.cin = (int)cin, key.h = (int)hp, key.w = (int)wp, key.cout = (int)cout, key.kernel = kernel;
    key.stride = stride, key.pad_h = pad_h, key.pad_w = pad_w, key.dtype = x.dtype, key.nhwc = nhwc;
    conv_plan *p = plan_lookup(d, &key, (int)ho, (int)wo);
    if (cudnnSetStream(d->handle, s->stream) != CUDNN_STATUS_SUCCESS) return 0;

    /* The scratch is reallocated when it grows, so the inputs are written
     * after the last cuda_scratch call. */
    if (!p->chosen) {
        char *base = (char *)cuda_scratch(s, buffers_bytes(&buffers));
        if (buffers_bytes(&buffers) && !base) return -1;
        if (!buffers_fill(s, &buffers, base, &key, y, x, w, top, left)) return -1;
        plan_choose(s, d, p, buffers.x, buffers.w, buffers.y);
        if (s->failed) return -1;
    }
    if (!p->usable) return 0;
    char *base = (char *)cuda_scratch(s, buffers_bytes(&buffers) + p->workspace);
    if (!base && buffers_bytes(&buffers) + p->workspace) return -1;
    if (!buffers_fill(s, &buffers, base, &key, y, x, w, top, left)) return -1;
    const float one = 1.0f, zero = 0.0f;
    cudnnStatus_t status = cudnnConvolutionForward(d->handle, &one, p->x, buffers.x, p->w, buffers.w, p->conv, p->algo,
                                                   p->workspace ? buffers.workspace : NULL, p->workspace, &zero, p->y,
                                                   buffers.y);
    if (status != CUDNN_STATUS_SUCCESS) { /* e.g. an alignment this algorithm cannot take: im2col this time */
        cudaGetLastError();
        if (cudnn_logging()) fprintf(stderr, "moedit: cudnnConvolutionForward: %s\n", cudnnGetErrorString(status));
        return 0;
    }
    if (!cuda_launched(s, "conv2d (cuDNN)")) return -1;
    if (nhwc) cuda_transpose_on(s, y.data, y.dtype, buffers.y, y.dtype, ho * wo, cout); /* back to [Cout, Ho*Wo] */
    return s->failed ? -1 : 1;
}

#endif /* MOEDIT_HAVE_CUDNN */

void cuda_conv2d(backend *be, tensor y, tensor x, tensor w, tensor bias, int kernel, int stride, const int pad[4])
{
    cuda_state *s = cuda_of(be);
    int64_t cin = x.shape[0], h = x.shape[1], wi = x.shape[2];
    int64_t cout = y.shape[0], ho = y.shape[1], wo = y.shape[2];
    int64_t patch = cin * kernel * kernel, pixels = ho * wo;
    assert(x.ndim == 3 && y.ndim == 3 && tensor_cols(&w) == patch && tensor_rows(&w) == cout);
    assert(ho == (h + pad[0] + pad[1] - kernel) / stride + 1 && wo == (wi + pad[2] + pad[3] - kernel) / stride + 1);
    assert(!bias.data || tensor_numel(&bias) == cout);
    (void)h, (void)wi, (void)patch;
    if (pixels == 0 || cout == 0) return;
    int done = 0;
#ifdef MOEDIT_HAVE_CUDNN
    done = conv2d_cudnn(s, y, x, w, kernel, stride, pad);
    if (done < 0) return;
#endif
    if (!done && !conv2d_im2col(s, y, x, w, kernel, stride, pad)) return;
    conv_add_bias(s, y, bias, cout, pixels);
}
