/* Under mpirun: moedit bench over layouts (moedit_bench_layouts) on
 * models/tiny-random runs a small matrix for the world's size and
 *   - every layout it reports correct has final latents within 1e-4 of their
 *     scale of the serial reference's, recomputed here from the files it kept;
 *   - every layout it could not run is listed as skipped, with a reason that
 *     names the cause (heads, ranks, VAE bands, EP over one rank);
 *   - the JSON, markdown and SVG reports are written and well-formed;
 *   - its final latents for a layout equal, bit for bit, those of a
 *     standalone moedit_generate of that layout with the same routing (the
 *     bench runs generate's own code). */
#include "bench/bench.h"
#include "core/text_file.h"
#include "test_layouts.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MODEL MOEDIT_FIXTURES "/../../models/tiny-random"
#define LATENTS (4 * 8 * 8)

static char dir[64], work[96];

/* dir/name.latents: a run's final latents. */
static int read_latents(const char *dir, const char *name, float *out)
{
    static const int64_t shape[3] = {4, 8, 8};
    return test_read_latents(dir, name, 3, shape, out);
}

/* A report's text (NULL if unreadable: the checks on it then fail). */
static char *read_file(const char *path)
{
    char *text = NULL;
    if (text_file_read(path, 1 << 20, "report", &text)) fprintf(stderr, "%s\n", error_message());
    return text;
}

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

static const moedit_bench_layout *find(const moedit_bench_result *r, const char *name)
{
    for (int i = 1; i < r->count; i++)
        if (!strcmp(r->layouts[i].name, name)) return &r->layouts[i];
    return NULL;
}

static void expect_skipped(const moedit_bench_result *r, const char *name, const char *because)
{
    const moedit_bench_layout *l = find(r, name);
    CHECK_MSG(l && l->skipped && strstr(l->reason, because), "%s should be skipped because of '%s' (got: %s)", name,
              because, l ? l->reason : "not listed");
}

/* Every layout: a reason when skipped; within tolerance (as the files say) when correct. */

/* Layouts ran grouped by weight shards (tp degree, EP group size), the
 * reference's group first: the shard keys along the run order change once
 * per group. */
static int shards_of(const moedit_bench_layout *l)
{
    int world = l->expert_scope == MOEDIT_EXPERT_SCOPE_WORLD; /* +epw: the experts over every rank of the layout */
    return l->tp * 10000 + (!l->expert_parallel ? 1 : world ? l->ranks : l->tp * l->ulysses * l->ring);
}

static void check_run_order(const moedit_bench_result *r)
{
    int key_at[64], groups = 0, changes = 0, distinct[64], seen = 0;
    CHECK(r->count <= 64 && r->layouts[0].run_order == 0);
    for (int i = 0; i < r->count && i < 64; i++) {
        CHECK(r->layouts[i].run_order >= 0 && r->layouts[i].run_order < r->count);
        key_at[r->layouts[i].run_order] = shards_of(&r->layouts[i]);
    }
    for (int k = 0; k < r->count && k < 64; k++) {
        if (k > 0 && key_at[k] != key_at[k - 1]) changes++;
        int known = 0;
        for (int j = 0; j < seen; j++) known |= distinct[j] == key_at[k];
        if (!known) distinct[seen++] = key_at[k];
    }
    groups = seen;
    CHECK_MSG(changes == groups - 1, "%d shard groups ran in %d runs of one key", groups, changes + 1);
    CHECK(key_at[0] == shards_of(&r->layouts[0]));
}

static void check_layouts(const moedit_bench_result *r)
{
    float serial[LATENTS], got[LATENTS];
    char name[32];
    CHECK_MSG(read_latents(work, "serial", serial) == 0, "%s", error_message());
    double scale = test_max_abs(serial, LATENTS);
    int correct = 0;
    CHECK(r->count >= 1 && r->layouts[0].reference);
    for (int i = 0; i < r->count; i++) {
        const moedit_bench_layout *l = &r->layouts[i];
        if (l->skipped) {
            CHECK_MSG(l->reason[0] != '\0', "%s: skipped without a reason", l->name);
            continue;
        }
        CHECK_MSG(!l->failed, "%s failed: %s", l->name, l->reason);
        CHECK_MSG(l->correct, "%s: latents differ by %.3g (scale %.3g)", l->name, l->latent_max_diff, l->latent_scale);
        CHECK_MSG(l->step_ms_median > 0 && l->end_to_end_seconds > 0 && l->images_per_second > 0, "%s: no timing", l->name);
        CHECK_MSG(l->memory_mib_max > 0, "%s: no memory figure", l->name);
        /* The busiest rank's share of the routed rows: at least the mean, at most all of them. */
        if (l->expert_parallel)
            CHECK_MSG(l->expert_load >= 1 && l->expert_load <= l->ranks, "%s: expert load %g", l->name, l->expert_load);
        else
            CHECK_MSG(isnan(l->expert_load), "%s: expert load %g without EP", l->name, l->expert_load);
        if (!l->correct) continue;
        correct++;
        if (i) snprintf(name, sizeof name, "layout-%d", i);
        else snprintf(name, sizeof name, "serial");
        CHECK_MSG(read_latents(work, name, got) == 0, "%s: %s", l->name, error_message());
        double diff = test_max_abs_diff(got, serial, LATENTS);
        CHECK_MSG(diff <= 1e-4 * scale, "%s reported correct but its latents differ by %.3g (scale %.3g)", l->name, diff,
                  scale);
        CHECK_MSG(diff == l->latent_max_diff, "%s: reported diff %.3g, files say %.3g", l->name, l->latent_max_diff, diff);
        printf("  %-28s step %.2f ms, %.1f images/s, latent diff %.3g\n", l->name, l->step_ms_median,
               l->images_per_second, diff);
    }
    CHECK(correct >= (moedit_world_size() > 1 ? 3 : 2));
    check_run_order(r);
    CHECK(r->fastest >= 0 && r->fastest < r->count && r->layouts[r->fastest].correct && r->layouts[r->fastest].fastest);
}

static void check_reports(const moedit_bench_result *r)
{
    char json[128], markdown[128], svg[128];
    snprintf(json, sizeof json, "%s/bench.json", dir);
    snprintf(markdown, sizeof markdown, "%s/bench.md", dir);
    snprintf(svg, sizeof svg, "%s/bench.svg", dir);
    CHECK_MSG(moedit_bench_write_json(r, json) == 0, "%s", error_message());
    CHECK_MSG(moedit_bench_write_markdown(r, markdown) == 0, "%s", error_message());
    CHECK_MSG(moedit_bench_write_svg(r, svg) == 0, "%s", error_message());
    int ran = 0;
    for (int i = 0; i < r->count; i++) ran += !r->layouts[i].skipped && !r->layouts[i].failed;

    char *text = read_file(json);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    CHECK_MSG(root != NULL, "%s is not JSON", json);
    cJSON *layouts = cJSON_GetObjectItem(root, "layouts");
    CHECK(cJSON_GetArraySize(layouts) == r->count);
    for (int i = 0; i < cJSON_GetArraySize(layouts); i++) {
        cJSON *l = cJSON_GetArrayItem(layouts, i);
        const char *status = cJSON_GetStringValue(cJSON_GetObjectItem(l, "status"));
        CHECK(cJSON_IsString(cJSON_GetObjectItem(l, "name")) && status);
        if (status && !strcmp(status, "skipped")) CHECK(cJSON_IsString(cJSON_GetObjectItem(l, "reason")));
        else CHECK(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(l, "step_ms"), "median")));
    }
    CHECK(cJSON_IsString(cJSON_GetObjectItem(root, "fastest")));
    cJSON_Delete(root);
    free(text);

    text = read_file(markdown);
    CHECK(text && !strncmp(text, "### ", 4) && strstr(text, "| layout |") && strstr(text, "(fastest)"));
    CHECK_MSG(text && count_of(text, "\n| ") == ran + 1, "markdown: %d table rows for %d layouts run",
              text ? count_of(text, "\n| ") - 1 : -1, ran);
    free(text);

    text = read_file(svg);
    size_t length = text ? strlen(text) : 0;
    CHECK(text && !strncmp(text, "<svg xmlns=", 11) && length > 7 && !strcmp(text + length - 7, "</svg>\n"));
    CHECK_MSG(text && count_of(text, "<rect ") == 1 + ran, "svg: %d bars for %d layouts run",
              text ? count_of(text, "<rect ") - 1 : -1, ran);
    CHECK(text && count_of(text, "<text") == count_of(text, "</text>"));
    free(text);
}

/* The first layout of the whole world that ran, again through moedit_generate. */
static void check_matches_generate(const moedit_bench_result *r)
{
    int index = -1;
    for (int i = 1; i < r->count && index < 0; i++)
        if (!r->layouts[i].skipped && r->layouts[i].ranks == moedit_world_size() && r->layouts[i].images == 1) index = i;
    CHECK(index > 0);
    if (index < 0) return;
    const moedit_bench_layout *l = &r->layouts[index];
    char png[128], latents[128], replay[128], bench_latents[32];
    snprintf(png, sizeof png, "%s/generate.png", dir);
    snprintf(latents, sizeof latents, "%s/generate.latents", dir);
    snprintf(replay, sizeof replay, "%s/routing.safetensors", work);
    snprintf(bench_latents, sizeof bench_latents, "layout-%d", index);
    const char *prompts[1] = {"a red circle on a blue background"};
    moedit_generate_options o = {
        .model_dir = MODEL, .prompts = prompts, .prompt_count = 1, .height = 64, .width = 64, .steps = 2,
        .guidance = 3.0, .seed = 5, .images_per_prompt = 1, .output = png, .latents_output = latents, .device = "cpu",
        .parallel = {l->tp, l->ulysses, l->ring, l->cfg, l->dp, l->expert_parallel, l->vae_patch},
        .routing_replay = replay, .quiet = 1,
    };
    moedit_generate_result *result = calloc(1, sizeof *result);
    CHECK_MSG(moedit_generate(&o, result) == 0, "generate %s: %s", l->name, error_message());
    moedit_generate_result_free(result);
    free(result);
    test_barrier();
    if (moedit_rank() != 0) return;
    float from_bench[LATENTS], from_generate[LATENTS];
    CHECK_MSG(read_latents(work, bench_latents, from_bench) == 0 && read_latents(dir, "generate", from_generate) == 0, "%s",
              error_message());
    double diff = test_max_abs_diff(from_bench, from_generate, LATENTS);
    CHECK_MSG(diff == 0, "%s: bench and generate latents differ by %.3g", l->name, diff);
    printf("  %s: bench's final latents equal moedit generate's\n", l->name);
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    char child[512];
    while (d && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(child, sizeof child, "%s/%s", path, e->d_name);
        struct stat st;
        if (stat(child, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(child);
        else unlink(child);
    }
    if (d) closedir(d);
    rmdir(path);
}

/* EP with experts placed by the reference run's loads: still the serial
 * result, and less busy than experts in id order (the placement is the best
 * over all deals for the same, replayed routing; for this model and seed id
 * order is not the best). */
static void check_expert_placement(const moedit_bench_options *base)
{
    moedit_bench_options o = *base;
    o.layouts = "tp2+ep,ulysses2+ep";
    double load[2][2] = {{0}};
    for (int placed = 0; placed < 2; placed++) {
        o.expert_placement = placed ? "reference" : NULL;
        moedit_bench_result r;
        int status = moedit_bench_layouts(&o, &r);
        CHECK_MSG(status == 0, "bench --expert-placement: %s", error_message());
        for (int i = 1; status == 0 && moedit_rank() == 0 && i < r.count; i++) {
            CHECK_MSG(r.layouts[i].correct, "%s with placement %d: latents differ by %.3g", r.layouts[i].name, placed,
                      r.layouts[i].latent_max_diff);
            load[placed][i - 1] = r.layouts[i].expert_load;
        }
        moedit_bench_free(&r);
    }
    if (moedit_rank() != 0) return;
    for (int i = 0; i < 2; i++) {
        printf("  expert load in id order %.4f, placed by the reference's loads %.4f\n", load[0][i], load[1][i]);
        CHECK(load[1][i] >= 1 && load[1][i] < load[0][i]);
    }
}

int main(int argc, char **argv)
{
    int n = test_layouts_init(&argc, &argv, dir, sizeof dir, "/tmp/moedit_bench_test_XXXXXX");
    snprintf(work, sizeof work, "%s/work", dir);

    const char *layouts = "auto,tp2";
    if (n == 2) layouts = "auto,tp4,tp2:vae4,dp2:vae2";
    if (n == 4) layouts = "tp2xcfg2:vae4,ulysses2xring2+ep,ring4+ep:vae2,cfg2xdp2,tp2,tp4,cfg2xdp2+ep,ring3";
    moedit_bench_options o = {
        .model_dir = MODEL, .device = "cpu", .text_tokens = 128, .height = 64, .width = 64, .steps = 2,
        .guidance = 3.0, .seed = 5, .layouts = layouts, .warmup_steps = 1, .work_dir = work, .quiet = 1,
    };
    moedit_bench_result r;
    int status = moedit_bench_layouts(&o, &r);
    CHECK_MSG(status == 0, "bench: %s", error_message());
    if (status == 0 && moedit_rank() == 0) {
        check_layouts(&r);
        check_reports(&r);
        if (n == 1) expect_skipped(&r, "tp2", "needs 2 ranks");
        if (n == 2) {
            expect_skipped(&r, "tp4", "needs 4 ranks");
            expect_skipped(&r, "tp2:vae4", "does not divide");
            expect_skipped(&r, "dp2:vae2", "does not divide the 1 rank");
            expect_skipped(&r, "cfg2+ep", "EP over one rank");
            CHECK(find(&r, "ulysses2+ep:vae2") && find(&r, "dp2") && find(&r, "cfg2:vae2"));
        }
        if (n == 4) {
            expect_skipped(&r, "tp4", "attention heads");
            expect_skipped(&r, "cfg2xdp2+ep", "EP over one rank");
            expect_skipped(&r, "ring3", "does not divide the world");
            const moedit_bench_layout *tp2 = find(&r, "tp2");
            CHECK(tp2 && !tp2->skipped && tp2->ranks == 2 && tp2->efficiency > 0);
        }
    }
    if (status == 0) check_matches_generate(&r);
    moedit_bench_free(&r);
    if (n == 2) check_expert_placement(&o);
    test_barrier();
    if (moedit_rank() == 0) remove_tree(dir);
    return test_layouts_finish("mpi_bench_layouts");
}
