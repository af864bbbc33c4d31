/* Under mpirun: the bytes each parallel mode hands its process group in one
 * denoising step are those of the formulas in docs/multi-node.md
 * ("Communication per step, from the code"), exactly. moedit_generate runs
 * one step of models/tiny-random (64 x 64, random prompt embeddings of 8 T5
 * and 8 Llama tokens, guidance 3) with every group of more than one rank
 * wrapped in the byte counter of parallel/pg_timed.c; the mean over ranks of
 * each group's bytes is compared with the formula. The counter sees what a
 * rank passes in: an all-to-all's whole send buffer (its own share included),
 * a send's block, an all-gather's own rows, an all-reduce's payload. Each
 * tp, sp and cfg group also all-reduces two floats per step (whether any
 * rank's latents went non-finite, and whether any rank was asked to cancel
 * the job: pipelines/denoise.c).
 * Expert parallelism over the world (--expert-parallel-scope world) moves
 * each rank's own routed rows whenever its group holds more than the tp
 * ranks (docs/expert-parallel.md); over dp replicas its group also sums the
 * step's flags.
 *   2 ranks: tp2, ulysses2, ring2, cfg2, cfg2 and dp2 +EP(world);  4 ranks:
 *   ulysses2 x ring2, tp2 x ring2, ulysses2 x cfg2 +EP, ulysses2 x cfg2 and
 *   tp2 x dp2 +EP(world);  1 rank: nothing is exchanged. */
#include "bench/bench_layouts.h"
#include "core/error.h"
#include "dit/dit_config.h"
#include "moedit.h"
#include "parallel/layout.h"
#include "parallel/pg_timed.h"
#include "pipelines/generate_hooks.h"
#include "test_model_dir.h"
#include "test_util.h"

#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#define SIZE 64        /* pixels a side */
#define TEXT_TOKENS 8  /* T5 and Llama tokens each */
#define FLAG 8.0       /* the step's two flags: non-finite latents, cancel */

static char dir[64], embeds[128];
static dit_config cfg;
static pg_timing timing[GROUP_KINDS];

static process_group *count_bytes(void *user, process_group *group)
{
    (void)user;
    for (int kind = 0; kind < GROUP_KINDS && group->size > 1; kind++)
        if (!strcmp(group->name, layout_group_name((group_kind)kind))) return pg_create_timed(group, &timing[kind]);
    return group;
}

/* One step of `par`; the bytes handed to each kind of group, mean over the world's ranks. */
static int measure(moedit_parallel par, int images, double bytes[GROUP_KINDS])
{
    char png[128];
    snprintf(png, sizeof png, "%s/out.png", dir);
    moedit_generate_options o = {.model_dir = TEST_TINY_MODEL, .prompt_embeds_path = embeds, .height = SIZE,
                                 .width = SIZE, .steps = 1, .guidance = 3.0, .seed = 1, .images_per_prompt = images,
                                 .output = png, .device = "cpu", .quiet = 1, .parallel = par};
    generate_hooks hooks = {0};
    hooks.wrap_group = count_bytes;
    memset(timing, 0, sizeof timing);
    moedit_generate_result *r = calloc(1, sizeof *r);
    int status = generate_with_hooks(&o, &hooks, r);
    moedit_generate_result_free(r);
    free(r);
    double mine[GROUP_KINDS];
    for (int k = 0; k < GROUP_KINDS; k++) mine[k] = timing[k].bytes;
    if (moedit_world_size() > 1)
        MPI_Allreduce(mine, bytes, GROUP_KINDS, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    else
        memcpy(bytes, mine, sizeof mine);
    for (int k = 0; k < GROUP_KINDS; k++) bytes[k] /= moedit_world_size();
    return status;
}

/* The formulas, per rank and step, for degrees t, u, r, cfg, dp and EP
 * (ep_world: over every rank), fp32 (b = 4). */
static void formulas(int t, int u, int r, int cfg_split, int dp, int ep, int ep_world, double want[GROUP_KINDS])
{
    const double b = 4, C = cfg.dim, nd = cfg.num_double_blocks, ns = cfg.num_single_blocks, n = nd + ns;
    const double K = cfg.num_activated_experts, E = cfg.num_routed_experts;
    const double N = (double)(SIZE / 8 / cfg.patch_size) * (SIZE / 8 / cfg.patch_size);
    const double Sq = N + 2 * TEXT_TOKENS, Sk = Sq + TEXT_TOKENS, sp = u * r;
    const double B = cfg_split == 2 ? 1 : 2; /* guidance: both branches batched unless split */
    memset(want, 0, GROUP_KINDS * sizeof *want);
    if (t > 1) want[GROUP_TP] = B * 2 * n * (Sq / sp) * C * b + 4 * B * n * (Sq + Sk) / sp + FLAG;
    if (u > 1) want[GROUP_ULYSSES] = B * n * 2 * (Sq + Sk) / sp * (C / t) * b;
    if (r > 1) want[GROUP_RING] = 2 * B * n * (r - 1) * (Sk / r) * C / (t * u) * b;
    if (sp > 1) /* the final layer's rows: [N / sp, patch^2 x out_channels] per sample */
        want[GROUP_SP] = B * (N / sp) * cfg.patch_size * cfg.patch_size * cfg.out_channels * b + FLAG;
    /* Rows travel when the ep group holds more than the tp ranks: out K times
     * and back, plus E int32 counts per MoE call (one per block). */
    int moves = ep && (sp > 1 || (ep_world && cfg_split * dp > 1));
    if (moves) want[GROUP_EP] = 2 * B * K * C * (nd * N + ns * Sq) / (sp * t) * b + n * E * 4;
    if (ep && ep_world && dp > 1) want[GROUP_EP] += FLAG;
    if (cfg_split == 2) want[GROUP_CFG] = (double)cfg.in_channels * (SIZE / 8) * (SIZE / 8) * 4 + FLAG;
}

static void check(const char *name, moedit_parallel par)
{
    double got[GROUP_KINDS], want[GROUP_KINDS];
    int t = par.tensor_parallel ? par.tensor_parallel : 1, u = par.ulysses ? par.ulysses : 1;
    int r = par.ring ? par.ring : 1, split = par.cfg_parallel ? par.cfg_parallel : 1;
    int dp = par.data_parallel ? par.data_parallel : 1; /* one image per replica */
    CHECK_MSG(measure(par, dp, got) == 0, "%s: %s", name, error_message());
    formulas(t, u, r, split, dp, par.expert_parallel, par.expert_parallel_scope == MOEDIT_EXPERT_SCOPE_WORLD, want);
    for (int k = 0; k < GROUP_KINDS; k++) {
        CHECK_MSG(fabs(got[k] - want[k]) < 1e-6 * (want[k] + 1), "%s: group %s was handed %.1f bytes a step, the "
                  "formula says %.1f", name, layout_group_name((group_kind)k), got[k], want[k]);
        if (moedit_rank() == 0 && got[k] > 0)
            printf("  %-22s %-8s %10.1f bytes per rank per step (formula %.1f)\n", name,
                   layout_group_name((group_kind)k), got[k], want[k]);
    }
}

int main(int argc, char **argv)
{
    moedit_init(&argc, &argv);
    int n = moedit_world_size();
    CHECK_MSG(dit_config_load(&cfg, TEST_TINY_MODEL "/transformer/config.json") == 0, "%s", error_message());
    if (moedit_rank() == 0) {
        snprintf(dir, sizeof dir, "/tmp/moedit_comm_XXXXXX");
        CHECK(mkdtemp(dir) != NULL);
    }
    if (n > 1) MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    snprintf(embeds, sizeof embeds, "%s/embeds.safetensors", dir);
    if (moedit_rank() == 0) CHECK_MSG(bench_write_random_embeds(embeds, &cfg, TEXT_TOKENS, 7) == 0, "%s", error_message());
    if (n > 1) MPI_Barrier(MPI_COMM_WORLD);
    const int world = MOEDIT_EXPERT_SCOPE_WORLD;
    if (n == 1) check("serial", (moedit_parallel){0});
    if (n == 2) {
        check("tp2", (moedit_parallel){.tensor_parallel = 2});
        check("ulysses2", (moedit_parallel){.ulysses = 2});
        check("ring2", (moedit_parallel){.ring = 2});
        check("cfg2", (moedit_parallel){.cfg_parallel = 2});
        check("cfg2 +EP(world)", (moedit_parallel){.cfg_parallel = 2, .expert_parallel = 1, .expert_parallel_scope = world});
        check("dp2 +EP(world)", (moedit_parallel){.data_parallel = 2, .expert_parallel = 1, .expert_parallel_scope = world});
    }
    if (n == 4) {
        check("ulysses2 x ring2", (moedit_parallel){.ulysses = 2, .ring = 2});
        check("tp2 x ring2", (moedit_parallel){.tensor_parallel = 2, .ring = 2});
        check("ulysses2 x cfg2 +EP", (moedit_parallel){.ulysses = 2, .cfg_parallel = 2, .expert_parallel = 1});
        check("ulysses2 x cfg2 +EP(w)",
              (moedit_parallel){.ulysses = 2, .cfg_parallel = 2, .expert_parallel = 1, .expert_parallel_scope = world});
        check("tp2 x dp2 +EP(world)",
              (moedit_parallel){.tensor_parallel = 2, .data_parallel = 2, .expert_parallel = 1,
                                .expert_parallel_scope = world});
    }
    char name[64];
    snprintf(name, sizeof name, "mpi_comm_volumes (rank %d of %d)", moedit_rank(), n);
    int status = test_finish(name);
    moedit_finalize();
    return status;
}
