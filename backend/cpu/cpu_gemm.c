/* c[m, n] = alpha a[m, k] op(b) + beta c, in fixed chunks over OpenMP threads.
 *
 * Why chunks fixed by the shape: a BLAS computes a row of c by other kernels
 * depending on where it falls in the product it was given: OpenBLAS blocks a
 * product into panels, takes rows and columns in groups with other kernels
 * for a last, partial group, and has separate kernels for small products.
 * Any cut of a product into parts therefore changes the bits of some
 * elements, and where depends on the BLAS and the CPU: OpenBLAS 0.3.21 on
 * Zen gave other bits at row 156 of a 301x257x96 product cut at row 160, at
 * row 120 cut at 128, and at column 280 of a 45x600x128 one cut at column
 * 288, so cutting on multiples of 32 rows (the earlier rule) still made
 * the demo's picture depend on the thread count. A product is now always cut
 * into the same chunks, chosen from m, n and k alone, never from the number
 * of threads; each chunk is one cblas_sgemm call with the same arguments
 * however many threads there are, threads take whole chunks, and one thread
 * runs them in order. The same calls give the same bits on any BLAS that is
 * deterministic per call, whatever the threads (test_cpu_threads, cli_threads).
 *
 * The cut: along the longer of rows (m) and columns (n), since each chunk
 * packs the whole other operand again, into a power of two of chunks (2 and
 * 4 threads share them evenly) cut on multiples of GEMM_CHUNK_ALIGN rows or
 * columns (whole kernel groups), each with at least GEMM_CHUNK_WORK
 * multiply-adds (tens of microseconds: less is not worth waking a thread);
 * up to GEMM_CHUNKS_ANY chunks for any product, more only
 * while each keeps GEMM_CHUNK_WIDE rows or columns. The repacking is why:
 * single-threaded OpenBLAS on 4096x3072x3072, whole 0.87 s; chunks of 512
 * rows the same within noise, 256 about +5%, 128 about +15%. Smaller
 * products are one chunk.
 *
 * BLAS runs single-threaded inside each chunk (one thread pool: OpenMP's);
 * OpenBLAS's own threading is turned off on the first product. */
#include "backend/cpu/cpu_gemm.h"

#include <omp.h>
#include <pthread.h>

#define GEMM_CHUNK_ALIGN 16
#define GEMM_CHUNK_WORK ((int64_t)1 << 20)
#define GEMM_CHUNKS_ANY 4
#define GEMM_CHUNK_WIDE 512

/* Weak, so that another BLAS links too (its threads, if any, are then its own business). */
extern void openblas_set_num_threads(int threads) __attribute__((weak));

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_single_threaded(void)
{
    if (openblas_set_num_threads) openblas_set_num_threads(1);
}

/* How many chunks a product of `extent` rows (or columns), each of `across`
 * multiply-adds, is cut into: from the shape alone. */
static int64_t chunk_count(int64_t extent, int64_t across)
{
    int64_t count = 1;
    for (int64_t next = 2;; next *= 2) {
        int64_t width = extent / next;
        if (width < GEMM_CHUNK_ALIGN || width * across < GEMM_CHUNK_WORK) break;
        if (next > GEMM_CHUNKS_ANY && width < GEMM_CHUNK_WIDE) break;
        count = next;
    }
    return count;
}

/* The first row (or column) of chunk i of `count`; chunk `count` is the end. */
static int64_t chunk_start(int64_t extent, int64_t i, int64_t count)
{
    return i == count ? extent : extent * i / count / GEMM_CHUNK_ALIGN * GEMM_CHUNK_ALIGN;
}

void cpu_gemm(CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
              const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    pthread_once(&blas_once, blas_single_threaded);
    if (m == 0 || n == 0) return;
    int by_rows = m >= n;
    int64_t extent = by_rows ? m : n, chunks = chunk_count(extent, (by_rows ? n : m) * k);
    int threads = chunks < omp_get_max_threads() ? (int)chunks : omp_get_max_threads();
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && !omp_in_parallel())
    for (int64_t i = 0; i < chunks; i++) {
        int64_t first = chunk_start(extent, i, chunks), count = chunk_start(extent, i + 1, chunks) - first;
        if (by_rows)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, tb, (int)count, (int)n, (int)k, alpha, a + first * lda, (int)lda, b,
                        (int)ldb, beta, c + first * ldc, (int)ldc);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, tb, (int)m, (int)count, (int)k, alpha, a, (int)lda,
                        tb == CblasTrans ? b + first * ldb : b + first, (int)ldb, beta, c + first, (int)ldc);
    }
}
