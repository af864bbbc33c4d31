/* --max-gpu-memory's streaming on the GPU (tests/test_dit_weight_stream.h):
 * blocks in pinned host memory, copied on the copy stream into the double
 * buffer while the compute stream runs the block before; the output equals
 * the resident GPU run's bit for bit (the same bytes, the same kernels), the
 * device memory counted at the backend stays within the budget. Without a
 * GPU the test exits 77 (ctest: skipped). */
#include "backend/cuda/backend_cuda.h"
#include "test_dit_weight_stream.h"

#include <stdio.h>

int main(void)
{
    backend *gpu = backend_cuda_create(0);
    if (!gpu) {
        printf("test_cuda_dit_weight_stream: skipped (%s)\n", error_message());
        return 77;
    }
    return dit_weight_stream_test(gpu, "test_cuda_dit_weight_stream");
}
