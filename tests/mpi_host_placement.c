/* The layout planner knows the hosts. Under ctest's
 * mpi_host_placement_2hosts_4ranks, MOEDIT_HOST_ID_FOR_TESTS poses the 4
 * ranks as 2 hosts x 2 (ranks 0, 1 on host-a; 2, 3 on host-b) and
 *   - the world's host map is {0, 0, 1, 1};
 *   - a generate run whose Ulysses (or tensor-parallel) group spans the two
 *     hosts warns exactly once, on rank 0, naming the degrees that keep it
 *     inside one host; a run whose groups stay inside prints no such line.
 * Without the variable (the plain runs on 1, 2 and 4 ranks) every rank is
 * on one host and nothing warns. On every run, from host maps written here:
 *   - which groups of a layout span hosts, for 2 hosts x 2, for ranks placed
 *     round robin (mpirun --map-by node), and for hosts of 6 and 2 ranks;
 *   - the warning's text: the groups, and the flags or the placement to change;
 *   - moedit bench's auto list on 2 hosts x 2: the layouts whose tp x ulysses
 *     does not divide a host's 2 ranks come last, each part in the order of
 *     the list made for one host. */
#include "bench/bench_layouts.h"
#include "core/error.h"
#include "dit/dit_config.h"
#include "moedit.h"
#include "parallel/layout_hosts.h"
#include "parallel/world.h"
#include "pipelines/runtime.h"
#include "test_model_dir.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static const int two_by_two[4] = {0, 0, 1, 1};

static parallel_layout make(int tp, int ulysses, int ring, int cfg, int dp, int world)
{
    parallel_layout layout;
    parallel_degrees d = {tp, ulysses, ring, cfg, dp, 0, 1, EP_SCOPE_BRANCH};
    CHECK_MSG(layout_init(&layout, d, world, 0) == 0, "%s", error_message());
    return layout;
}

/* The warning for a layout on a host map: whether there is one, and that it contains `want`. */
static void expect_warning(parallel_layout layout, const int *host_of, const char *want)
{
    char text[640];
    int warned = layout_host_warning(&layout, host_of, text, (int)sizeof text);
    char name[128];
    layout_describe(&layout.degrees, name, (int)sizeof name);
    if (!want) {
        CHECK_MSG(!warned, "%s: warned though its tp and Ulysses groups stay inside hosts: %s", name, text);
        return;
    }
    CHECK_MSG(warned, "%s: no warning though a tp or Ulysses group spans hosts", name);
    CHECK_MSG(warned && strstr(text, want), "%s: the warning lacks '%s': %s", name, want, text);
}

static void placement_on_two_hosts(void)
{
    const int *h = two_by_two;
    parallel_layout tp2_cfg2 = make(2, 1, 1, 2, 1, 4), tp4 = make(4, 1, 1, 1, 1, 4);
    parallel_layout tp2_u2 = make(2, 2, 1, 1, 1, 4), u2_ring2 = make(1, 2, 2, 1, 1, 4);
    parallel_layout ring4 = make(1, 1, 4, 1, 1, 4), cfg2_dp2 = make(1, 1, 1, 2, 2, 4), u4 = make(1, 4, 1, 1, 1, 4);
    /* tp groups {0,1} {2,3}: one host each; cfg groups {0,2} {1,3}: across. */
    CHECK(!layout_group_spans_hosts(&tp2_cfg2, GROUP_TP, h) && layout_group_spans_hosts(&tp2_cfg2, GROUP_CFG, h));
    CHECK(layout_group_spans_hosts(&tp4, GROUP_TP, h));
    /* tp2 x ulysses2: tp {0,1}, ulysses {0,2}. */
    CHECK(!layout_group_spans_hosts(&tp2_u2, GROUP_TP, h) && layout_group_spans_hosts(&tp2_u2, GROUP_ULYSSES, h));
    /* ulysses2 x ring2: ulysses {0,1} inside, ring {0,2} across. */
    CHECK(!layout_group_spans_hosts(&u2_ring2, GROUP_ULYSSES, h) && layout_group_spans_hosts(&u2_ring2, GROUP_RING, h));
    CHECK(layout_group_spans_hosts(&ring4, GROUP_RING, h) && !layout_group_spans_hosts(&ring4, GROUP_TP, h));
    CHECK(layout_group_spans_hosts(&cfg2_dp2, GROUP_DP, h) && !layout_group_spans_hosts(&cfg2_dp2, GROUP_CFG, h));
    CHECK(!layout_group_spans_hosts(&tp4, GROUP_TP, NULL)); /* one host */

    expect_warning(tp4, h, "tensor-parallel groups (tp 4 x ulysses 1 = 4 consecutive ranks) span hosts (2 hosts of 2 ranks)");
    expect_warning(tp4, h, "--tensor-parallel-size 2 --ring-degree 2 keeps them inside one host");
    expect_warning(tp2_u2, h, "the Ulysses groups (tp 2 x ulysses 2");
    expect_warning(tp2_u2, h, "--ulysses-degree 1 --ring-degree 2 keeps");
    expect_warning(u4, h, "--ulysses-degree 2 --ring-degree 2 keeps");
    expect_warning(tp2_cfg2, h, NULL);
    expect_warning(u2_ring2, h, NULL);
    expect_warning(ring4, h, NULL);
    expect_warning(cfg2_dp2, h, NULL);
    expect_warning(tp4, NULL, NULL);

    /* Ranks dealt round robin (mpirun --map-by node): tp {0,1} spans hosts,
     * and only the launcher's placement can help. */
    const int round_robin[4] = {0, 1, 0, 1};
    expect_warning(tp2_cfg2, round_robin, "--map-by slot or core, not --map-by node");
    expect_warning(cfg2_dp2, round_robin, NULL);
    /* Hosts of 6 and 2 ranks: tp2 groups stay inside, ulysses {4, 6} does not. */
    const int uneven[8] = {0, 0, 0, 0, 0, 0, 1, 1};
    parallel_layout tp2_u2_ring2 = make(2, 2, 2, 1, 1, 8);
    CHECK(!layout_group_spans_hosts(&tp2_u2_ring2, GROUP_TP, uneven));
    expect_warning(tp2_u2_ring2, uneven, "2 hosts of uneven sizes, all multiples of 2 ranks");
    expect_warning(tp2_u2_ring2, uneven, "--ulysses-degree 1 --ring-degree 4 keeps");
}

/* moedit bench's auto list on 4 ranks: on 2 hosts x 2, the same layouts as
 * on one host, those with tp x ulysses > 2 after the others, both parts in
 * the one-host order. */
static void auto_order_on_two_hosts(const char *transformer_config)
{
    bench_facts facts = {.world_size = 4, .has_vae = 1, .latent_rows = 8, .guidance = 3.0};
    CHECK_MSG(dit_config_load(&facts.dit, transformer_config) == 0, "%s", error_message());
    moedit_bench_layout *one = NULL, *two = NULL;
    int ones = 0, twos = 0;
    CHECK_MSG(bench_layout_list("auto", &facts, &one, &ones) == 0, "%s", error_message());
    facts.host_of = two_by_two;
    CHECK_MSG(bench_layout_list("auto", &facts, &two, &twos) == 0, "%s", error_message());
    CHECK(ones == twos && ones > 0);
    int expected = 0, crossing = 0;
    for (int pass = 0; pass < 2 && ones == twos; pass++) /* pass 0: inside hosts; 1: across */
        for (int i = 0; i < ones; i++) {
            int across = one[i].tp * one[i].ulysses > 2;
            if (across != pass) continue;
            crossing += across;
            CHECK_MSG(!strcmp(two[expected].name, one[i].name), "auto on 2 hosts x 2: position %d is %s, expected %s",
                      expected, two[expected].name, one[i].name);
            expected++;
        }
    CHECK_MSG(crossing > 0 && crossing < ones, "auto on 4 ranks: %d of %d layouts cross hosts", crossing, ones);
    if (moedit_rank() == 0)
        printf("  auto on 2 hosts x 2: %d layouts, the last %d with tp x ulysses across hosts (first: %s, last: %s)\n",
               twos, crossing, two[0].name, two[twos - 1].name);
    free(one), free(two);
}

/* tiny-random's transformer config with 4 attention heads of 8 (the same
 * weight shapes: dim 32, q/k norms over all heads), written to `path`. */
static void write_four_head_config(const char *path)
{
    FILE *f = fopen(TEST_TINY_MODEL "/transformer/config.json", "rb");
    char text[8192] = {0};
    CHECK(f && fread(text, 1, sizeof text - 1, f) > 0);
    if (f) fclose(f);
    cJSON *json = cJSON_Parse(text);
    CHECK(json != NULL);
    cJSON_ReplaceItemInObject(json, "num_attention_heads", cJSON_CreateNumber(4));
    cJSON_ReplaceItemInObject(json, "attention_head_dim", cJSON_CreateNumber(8));
    cJSON_ReplaceItemInObject(json, "axes_dims_rope", cJSON_CreateIntArray((const int[]){2, 2, 4}, 3));
    char *out = cJSON_Print(json);
    f = fopen(path, "wb");
    CHECK(f && out && fputs(out, f) >= 0);
    if (f) fclose(f);
    free(out);
    cJSON_Delete(json);
}

/* dir/heads4: models/tiny-random (links) with that config beside its
 * transformer weights, so that tp2 x ulysses2 divides the heads. Rank 0 makes it. */
static const char *four_head_model(void)
{
    static char path[128];
    char from[1024], to[1024];
    snprintf(path, sizeof path, "%s/heads4", dir);
    if (moedit_rank() == 0) {
        snprintf(to, sizeof to, "%s/transformer", path);
        CHECK(mkdir(path, 0755) == 0 && mkdir(to, 0755) == 0);
        for (size_t i = 0; i < sizeof test_model_parts / sizeof test_model_parts[0]; i++) {
            const char *part = strcmp(test_model_parts[i], "transformer") ? test_model_parts[i]
                                                                           : "transformer/diffusion_pytorch_model.safetensors";
            snprintf(from, sizeof from, "%s/%s", TEST_TINY_MODEL, part);
            snprintf(to, sizeof to, "%s/%s", path, part);
            CHECK(symlink(from, to) == 0);
        }
        snprintf(to, sizeof to, "%s/transformer/config.json", path);
        write_four_head_config(to);
    }
    if (moedit_world_size() > 1) MPI_Barrier(MPI_COMM_WORLD);
    return path;
}

/* Lines of this rank's stderr during a generate run of `par` that say a group spans hosts. */
static int host_warnings_of_run(const char *model, moedit_parallel par, const char *name)
{
    char log[128], png[128];
    snprintf(log, sizeof log, "%s/%s.stderr.%d", dir, name, moedit_rank());
    snprintf(png, sizeof png, "%s/%s.png", dir, name);
    fflush(stderr);
    int saved = dup(STDERR_FILENO), fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(saved >= 0 && fd >= 0 && dup2(fd, STDERR_FILENO) >= 0);
    const char *prompts[1] = {"a red circle on a blue background"};
    moedit_generate_options o = {.model_dir = model, .prompts = prompts, .prompt_count = 1, .height = 64, .width = 64,
                                 .steps = 2, .guidance = 3.0, .seed = 5, .images_per_prompt = 1, .output = png,
                                 .device = "cpu", .parallel = par, .quiet = 0};
    moedit_generate_result *r = calloc(1, sizeof *r);
    int status = moedit_generate(&o, r);
    moedit_generate_result_free(r);
    free(r);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved), close(fd);
    CHECK_MSG(status == 0, "%s: %s", name, error_message());
    int lines = 0;
    char line[2048];
    FILE *f = fopen(log, "r");
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, "moedit: warning:") && strstr(line, "span hosts")) lines++;
    if (f) fclose(f);
    return lines;
}

/* The world's hosts as the launcher (and the test variable) made them, and
 * the warning of real runs on 4 ranks. */
static void world_on_hosts(int posed)
{
    const world *w = runtime_world();
    if (posed) {
        CHECK_MSG(w->size == 4, "MOEDIT_HOST_ID_FOR_TESTS runs pose 4 ranks as 2 hosts x 2, not %d", w->size);
        CHECK_MSG(w->hosts == 2 && w->host_of && !memcmp(w->host_of, two_by_two, sizeof two_by_two),
                  "rank %d: %d host(s), rank %d's host %d", w->rank, w->hosts, w->rank, w->host_of ? w->host_of[w->rank] : -1);
    } else {
        CHECK_MSG(w->hosts == 1, "one machine, but %d hosts", w->hosts);
        for (int r = 0; w->host_of && r < w->size; r++) CHECK(w->host_of[r] == 0);
    }
    if (w->size != 4) return;
    const char *model = four_head_model();
    int across = host_warnings_of_run(model, (moedit_parallel){.tensor_parallel = 2, .ulysses = 2}, "tp2_ulysses2");
    int inside = host_warnings_of_run(model, (moedit_parallel){.tensor_parallel = 2, .cfg_parallel = 2}, "tp2_cfg2");
    int want = posed && w->rank == 0 ? 1 : 0;
    CHECK_MSG(across == want, "rank %d: tp2 x ulysses2 %s: %d warning line(s) that a group spans hosts, expected %d",
              w->rank, posed ? "on 2 hosts x 2" : "on one host", across, want);
    CHECK_MSG(inside == 0, "rank %d: tp2 x cfg2 keeps tp inside each host, yet %d warning line(s)", w->rank, inside);
    if (w->rank == 0)
        printf("  generate on %s: tp2 x ulysses2 warned %d time(s), tp2 x cfg2 %d\n", posed ? "2 hosts x 2" : "one host",
               across, inside);
}

int main(int argc, char **argv)
{
    moedit_init(&argc, &argv);
    int n = moedit_world_size();
    const char *posed = getenv("MOEDIT_HOST_ID_FOR_TESTS");
    if (moedit_rank() == 0) {
        snprintf(dir, sizeof dir, "/tmp/moedit_hosts_XXXXXX");
        CHECK(mkdtemp(dir) != NULL);
    }
    if (n > 1) MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    placement_on_two_hosts();
    auto_order_on_two_hosts(TEST_TINY_MODEL "/transformer/config.json");
    world_on_hosts(posed && *posed);
    char name[64];
    snprintf(name, sizeof name, "mpi_host_placement (rank %d of %d)", moedit_rank(), n);
    int status = test_finish(name);
    moedit_finalize();
    return status;
}
