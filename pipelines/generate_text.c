/* HiDream's prompts in a generate run (see generate.c's top): encoded once,
 * by the first rank of each CFG branch for the jobs of its replica, and
 * broadcast to the branch's tp x sp ranks. */
#include "pipelines/generate_state.h"

#include "core/error.h"
#include "core/timer.h"

#include <stdlib.h>
#include <string.h>

/* The CFG branch this rank runs: -1 both, 0 the prompt's, 1 the negative's. */
int generate_cfg_branch(const generate_state *g)
{
    return g->par.groups[GROUP_CFG]->size == 2 ? g->par.groups[GROUP_CFG]->rank : -1;
}

/* 1 on the first rank of this rank's branch (tp, ulysses and ring index 0):
 * the one that runs the text encoders for the branch's tp x sp ranks. */
static int branch_encodes(const generate_state *g)
{
    const parallel_layout *l = &g->par.layout;
    return l->tp_index == 0 && l->ulysses_index == 0 && l->ring_index == 0;
}

/* n floats from the branch's first rank to its tp x sp ranks: over the sp
 * group among the ranks of tp index 0, then over each tp group. Host F32,
 * so the bits arrive unchanged whatever the transport (NCCL groups send host
 * tensors over MPI). */
static int branch_broadcast(generate_state *g, float *data, int64_t n)
{
    tensor t = tensor_make(DTYPE_F32, DEVICE_CPU, 1, &n);
    t.data = data;
    process_group *sp = g->par.groups[GROUP_SP], *tp = g->par.groups[GROUP_TP];
    if (sp->size > 1 && tp->rank == 0 && sp->ops->broadcast(sp, t, 0)) return -1;
    return tp->size > 1 ? tp->ops->broadcast(tp, t, 0) : 0;
}

/* The encoding rank's status, then (when it succeeded) every embedding of
 * out[count], from the branch's first rank to the others. */
static int share_hidream_embeds(generate_state *g, int status, hidream_prompt_embeds *out, int count)
{
    float failed = status != 0;
    if (branch_broadcast(g, &failed, 1)) return -1;
    if (failed && status == 0) {
        int first = g->w->rank - g->par.layout.tp_index -
                    g->par.layout.degrees.tp * (g->par.layout.ulysses_index +
                                                g->par.layout.degrees.ulysses * g->par.layout.ring_index);
        status = error_set("the text encoders failed on rank %d, which encodes this rank's prompts (its message says why)",
                           first);
    }
    for (int i = 0; i < count && !status; i++) {
        hidream_prompt_embeds *e = &out[i];
        if (branch_broadcast(g, e->t5, e->t5_tokens * e->t5_channels) ||
            branch_broadcast(g, e->llama, e->llama_layers * e->llama_tokens * e->llama_channels) ||
            branch_broadcast(g, e->pooled, e->pooled_channels))
            status = -1;
    }
    return status;
}

/* HiDream's four encoders over the prompts this rank needs (see the top):
 * g->hidream_cond[p] for each prompt p of this replica's jobs, and the
 * negative prompt when guided; run on the branch's first rank alone and
 * broadcast to the rest of its tp x sp ranks. Each encoder's time and peak
 * into r (zero on the ranks that only receive). */
int generate_encode_hidream_prompts(generate_state *g, moedit_generate_result *r)
{
    const moedit_generate_options *o = g->o;
    int branch = generate_cfg_branch(g), guided = o->guidance > 1, replicas = g->par.layout.degrees.dp;
    int total = o->prompt_count * (int)o->images_per_prompt, count = 0, made = 0, encodes = branch_encodes(g);
    hidream_prompt *prompts = calloc((size_t)o->prompt_count + 1, sizeof *prompts);
    int *which = calloc((size_t)o->prompt_count + 1, sizeof *which); /* prompt index, or -1 for the negative */
    g->hidream_cond = calloc((size_t)o->prompt_count, sizeof *g->hidream_cond);
    hidream_prompt_embeds *out = calloc((size_t)o->prompt_count + 1, sizeof *out);
    int status = prompts && which && g->hidream_cond && out ? 0 : error_set("out of memory listing the prompts");
    for (int p = 0; p < o->prompt_count && !status && branch <= 0; p++)
        for (int job = p * (int)o->images_per_prompt; job < (p + 1) * (int)o->images_per_prompt && job < total; job++)
            if (job % replicas == g->par.layout.dp_index) {
                prompts[count] = (hidream_prompt){{o->prompts[p], o->prompt_2, o->prompt_3, o->prompt_4}};
                which[count++] = p;
                break;
            }
    if (!status && guided && branch != 0) {
        const char *negative = o->negative_prompt ? o->negative_prompt : "";
        prompts[count] = (hidream_prompt){{negative, o->negative_prompt_2, o->negative_prompt_3, o->negative_prompt_4}};
        which[count++] = -1;
    }
    double start = timer_seconds();
    memset(g->bundle.hidream.usage, 0, sizeof g->bundle.hidream.usage); /* this run's figures (a kept bundle too) */
    if (!status && count && encodes) status = hidream_text_encode(&g->bundle.hidream, prompts, count, out);
    if (!status && encodes) made = count;
    for (; made < count && !status; made++) status = hidream_prompt_embeds_alloc(&g->bundle.hidream, &out[made]);
    if (count && (status == 0 || encodes)) status = share_hidream_embeds(g, status, out, made);
    for (int i = 0; i < made; i++) {
        if (status) hidream_prompt_embeds_free(&out[i]);
        else if (which[i] < 0) g->hidream_uncond = out[i];
        else g->hidream_cond[which[i]] = out[i];
    }
    r->text_seconds += timer_seconds() - start;
    for (int k = 0; k < HIDREAM_ENCODERS; k++) {
        r->text_encoder_seconds[k] = g->bundle.hidream.usage[k].seconds;
        r->text_encoder_peak_bytes[k] = g->bundle.hidream.usage[k].peak_bytes;
    }
    free(prompts), free(which), free(out);
    return status;
}

void generate_free_hidream_prompts(generate_state *g)
{
    for (int p = 0; g->hidream_cond && p < g->o->prompt_count; p++) hidream_prompt_embeds_free(&g->hidream_cond[p]);
    free(g->hidream_cond);
    g->hidream_cond = NULL;
    hidream_prompt_embeds_free(&g->hidream_uncond);
}

/* Text inputs of one branch: the embeds file, HiDream's encoded prompts, or
 * the demo's encoder on `prompt`. */
int generate_branch_embeds(generate_state *g, prompt_embeds *e, int prompt_index, const char *prompt, int negative,
                         arena *scratch)
{
    if (g->o->prompt_embeds_path)
        return prompt_embeds_read(e, g->o->prompt_embeds_path, negative, &g->bundle.transformer.cfg);
    if (g->bundle.has_hidream) {
        prompt_embeds_view_hidream(e, negative ? &g->hidream_uncond : &g->hidream_cond[prompt_index]);
        return 0;
    }
    return prompt_embeds_encode(e, &g->bundle.encoder, g->bundle.tok, prompt, scratch);
}
