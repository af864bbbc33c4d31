/* The sequence plan; see dit_sequence.h. */
#include "dit/dit_sequence.h"

#include "parallel/layout.h"

enum { SEGMENT_IMAGE, SEGMENT_CONTEXT, SEGMENT_T5, SEGMENT_LLAMA, SEGMENTS };

void dit_sequence_plan(dit_sequence *s, const dit_segment_lengths *whole, int parts, int part)
{
    const int64_t length[SEGMENTS] = {whole->image, whole->context, whole->t5, whole->llama};
    int64_t first[SEGMENTS], rows[SEGMENTS];
    for (int p = 0; p < parts; p++) {
        int64_t kept = 0;
        for (int seg = 0; seg < SEGMENTS; seg++) {
            layout_split_rows(length[seg], parts, p, &first[seg], &rows[seg]);
            kept += rows[seg];
        }
        s->query_rows[p] = kept;
        s->key_rows[p] = kept + rows[SEGMENT_LLAMA]; /* the block's llama rows are keys too */
    }
    for (int seg = 0; seg < SEGMENTS; seg++) layout_split_rows(length[seg], parts, part, &first[seg], &rows[seg]);

    s->image_tokens = rows[SEGMENT_IMAGE];
    s->image_first = first[SEGMENT_IMAGE];
    int64_t valid_end = whole->valid - s->image_first;
    s->valid_tokens = valid_end < 0 ? 0 : (valid_end < s->image_tokens ? valid_end : s->image_tokens);
    s->context_tokens = rows[SEGMENT_CONTEXT];
    s->context_first = first[SEGMENT_CONTEXT];
    s->image_stream_tokens = s->image_tokens + s->context_tokens;
    s->t5_tokens = rows[SEGMENT_T5];
    s->llama_tokens = rows[SEGMENT_LLAMA];
    s->kept_tokens = s->image_stream_tokens + s->t5_tokens + s->llama_tokens;

    int64_t stream = whole->image + whole->context;
    s->global_image = first[SEGMENT_IMAGE];
    s->global_context = whole->image + first[SEGMENT_CONTEXT];
    s->global_t5 = stream + first[SEGMENT_T5];
    s->global_llama = stream + whole->t5 + first[SEGMENT_LLAMA];
    s->global_image_stream_tokens = stream;
    s->global_kept_tokens = stream + whole->t5 + whole->llama;
}
