/* The memory a run needs, estimated and checked before loading; see run_memory.h. */
#include "pipelines/run_memory.h"

#include "core/error.h"
#include "core/host_memory.h"

#include <omp.h>
#include <stdio.h>
#include <string.h>

#define ACTIVATION_FLOATS_PER_CHANNEL 24
#define CPU_SCRATCH_BYTES ((double)(16 << 20))
/* Address space each thread maps beyond the activations: OpenBLAS's 128 MiB
 * GEMM buffer and glibc's 64 MiB malloc arena. Without room for them
 * OpenBLAS retries its mmap forever (seen under `ulimit -v`). */
#define ADDRESS_SPACE_PER_THREAD ((double)(192 << 20))

static double gib(double bytes) { return bytes / (double)(1 << 30); }

static int at_least_one(int n) { return n > 1 ? n : 1; }

double run_memory_transformer_bytes(const dit_config *dit, int64_t tokens, int sp)
{
    double moe_hidden = dit->num_routed_experts > 1
                            ? (double)dit->num_activated_experts * dit->ffn_hidden + dit->shared_ffn_hidden
                            : (double)dit->ffn_hidden;
    return 4.0 * (double)tokens / sp * (ACTIVATION_FLOATS_PER_CHANNEL * (double)dit->dim + 3 * moe_hidden);
}

void run_memory_estimate(const dit_config *dit, const vae_config *vae, const moedit_generate_options *o,
                         int64_t frames, int in_context, int encodes_image, run_memory *m)
{
    memset(m, 0, sizeof *m);
    int64_t latent_h = o->height / vae->downscale, latent_w = o->width / vae->downscale;
    int64_t tokens = frames * (latent_h / dit->patch_size) * (latent_w / dit->patch_size);
    m->tokens = in_context ? 2 * tokens : tokens;
    double latents = (double)frames * dit->in_channels * latent_h * latent_w, pixels = (double)o->height * o->width;
    m->host = 4.0 * (4.0 * latents + (double)tokens * dit->patch_size * dit->patch_size * dit->in_channels) +
              (double)frames * pixels * 3 * (4 + 1);
    int on_cpu = !o->device || !strcmp(o->device, "cpu");
    if (!on_cpu) {
        m->total = m->host;
        return;
    }
    int sp = at_least_one(o->parallel.ulysses) * at_least_one(o->parallel.ring);
    m->transformer = run_memory_transformer_bytes(dit, m->tokens, sp);
    int widest = vae->block_out_channels[0];
    if (vae->levels > 1 && vae->block_out_channels[1] > widest) widest = vae->block_out_channels[1];
    int bands = at_least_one(o->parallel.vae_patch_parallel);
    m->vae = 4.0 * 3 * widest * pixels / bands;
    if (encodes_image) m->vae += 4.0 * 3 * vae->block_out_channels[0] * pixels / bands;
    m->total = m->host + m->transformer + m->vae + CPU_SCRATCH_BYTES;
}

int run_memory_check(const dit_config *dit, const vae_config *vae, const moedit_generate_options *o, int64_t frames,
                     int in_context, int encodes_image)
{
    run_memory m;
    run_memory_estimate(dit, vae, o, frames, in_context, encodes_image, &m);
    char run[160], parts[256];
    if (frames > 1)
        snprintf(run, sizeof run, "a clip of %lld frames at %lldx%lld (%lld image tokens)", (long long)frames,
                 (long long)o->width, (long long)o->height, (long long)m.tokens);
    else
        snprintf(run, sizeof run, "a %lldx%lld image (%lld image tokens)", (long long)o->width, (long long)o->height,
                 (long long)m.tokens);
    if (m.transformer > 0)
        snprintf(parts, sizeof parts, "%.1f GiB of transformer activations, %.1f GiB for the VAE, %.1f GiB of latents "
                 "and pictures", gib(m.transformer), gib(m.vae), gib(m.host));
    else
        snprintf(parts, sizeof parts, "%.1f GiB of latents and pictures in host memory", gib(m.host));
    int64_t limit, left = host_memory_address_space_left(&limit);
    int threads = omp_get_max_threads();
    /* Arenas grow by doubling blocks until their first reset: up to twice their peak mapped at once. */
    double mapped = m.total + m.transformer + m.vae + ADDRESS_SPACE_PER_THREAD * threads;
    if (left >= 0 && mapped > (double)left)
        return error_set("%s needs about %.1f GiB of memory (%s) and %.1f GiB of address space with its %d threads' "
                         "buffers and growing arenas, more than the %.1f GiB its address-space limit (ulimit -v, %.1f GiB) leaves; make "
                         "the image smaller, or raise the limit",
                         run, gib(m.total), parts, gib(mapped), threads, gib((double)left), gib((double)limit));
    char what[600];
    snprintf(what, sizeof what, "%s, beyond the weights (%s)", run, parts);
    return host_memory_check((int64_t)m.total, what);
}

/* The arenas of a run that may hold memory at once: the transformer run's
 * two, two texts', the VAE's, the text encoder's, and two to spare. */
#define RUN_ARENAS 8
#define ARENA_FIRST_BLOCK ((double)(1 << 20))

int64_t run_memory_device_activations(const dit_config *dit, const vae_config *vae, const moedit_generate_options *o,
                                      int64_t frames, int in_context, int encodes_image)
{
    moedit_generate_options on_cpu = *o;
    on_cpu.device = "cpu"; /* the estimate's F32 formulas, whatever the device */
    run_memory m;
    run_memory_estimate(dit, vae, &on_cpu, frames, in_context, encodes_image, &m);
    double dtype_share = o->device && !strcmp(o->device, "cuda") ? 0.5 : 1.0;
    return (int64_t)(2 * (m.transformer + m.vae) * dtype_share + RUN_ARENAS * ARENA_FIRST_BLOCK);
}
