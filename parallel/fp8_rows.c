/* FP8 activations of rows split over tensor-parallel ranks; see fp8_rows.h. */
#include "parallel/fp8_rows.h"

#include "core/error.h"

/* q = x quantized per row with the whole row's scale (amax max-reduced over
 * tp), in scratch; the caller releases it. */
static int quantize_whole_rows(backend *be, arena *scratch, process_group *tp, tensor x, tensor *q)
{
    int64_t rows = tensor_rows(&x);
    tensor amax = arena_tensor_typed(scratch, DTYPE_F32, rows, 1);
    tensor scale = arena_tensor_typed(scratch, DTYPE_F32, rows, 1);
    *q = arena_tensor_typed(scratch, DTYPE_F8_E4M3, rows, tensor_cols(&x));
    if (!amax.data || !scale.data || !q->data) return -1;
    q->scale = scale.data;
    if (!tp->ops->all_reduce_max)
        return error_set("process group %s: no max all-reduce for FP8 activations", tp->name);
    be->ops->row_abs_max(be, amax, x);
    if (tp->ops->all_reduce_max(tp, amax)) return -1;
    be->ops->quantize_rows(be, *q, x, amax);
    return 0;
}

static int split_rows_need_scales(process_group *tp, tensor w) { return tp->size > 1 && w.dtype == DTYPE_F8_E4M3; }

int fp8_row_parallel_linear(backend *be, arena *scratch, process_group *tp, tensor y, tensor x, tensor w,
                            tensor bias)
{
    if (!split_rows_need_scales(tp, w) || tensor_rows(&x) == 0) {
        be->ops->linear(be, y, x, w, bias);
        return 0;
    }
    arena_mark_t mark = arena_mark(scratch);
    tensor q;
    int status = quantize_whole_rows(be, scratch, tp, x, &q);
    if (!status) be->ops->linear(be, y, q, w, bias);
    arena_release(scratch, mark);
    return status;
}

int fp8_row_parallel_linear_grouped(backend *be, arena *scratch, process_group *tp, tensor y, tensor x,
                                    const tensor *w, const int64_t *offsets, int groups)
{
    if (groups == 0 || !split_rows_need_scales(tp, w[0]) || tensor_rows(&x) == 0) {
        be->ops->linear_grouped(be, y, x, w, offsets, groups);
        return 0;
    }
    arena_mark_t mark = arena_mark(scratch);
    tensor q;
    int status = quantize_whole_rows(be, scratch, tp, x, &q);
    if (!status) be->ops->linear_grouped(be, y, q, w, offsets, groups);
    arena_release(scratch, mark);
    return status;
}
