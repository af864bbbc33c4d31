/* Whole runs of the multistep and stochastic flow-matching schedulers
 * reproduce diffusers' on the committed fixtures (tools/make_scheduler_runs.py):
 *   UniPCMultistepScheduler: HiDream-I1-Full's config (flow_shift 3, order 2,
 *   bh2) and variants (order 1, order 3 with bh2 and with bh1, sigma_min
 *   without lower_order_final, correctors disabled, shift_terminal);
 *   FlowMatchLCMScheduler: HiDream-I1-Dev's and -Fast's (shift 6 and 3), with
 *   the noise diffusers drew in each step;
 * at 1, 2, 5 and 30 steps and from step 12 of 30 (an edit): sigmas and
 * timesteps bit for bit, and every step's sample through the whole run: LCM's
 * bit for bit, UniPC's within float32 rounding of diffusers' (its scalars are
 * float32 tensors). Then the refusals: configs moedit does not run, and those
 * where diffusers' last step gives infinities or NaN. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/philox.h"
#include "io/safetensors.h"
#include "pipelines/scheduler.h"
#include "tests/test_util.h"

#define FIXTURE MOEDIT_FIXTURES "/scheduler_runs"
#define SAMPLE 32 /* [2, 4, 4] */
/* diffusers computes each step's scalars as float32 tensors, whose logs and
 * exponentials may differ from the C library's in the last bit. Order 3's
 * solve amplifies that: diffusers' own float32 run of order3 at 30 steps
 * differs from its float64 run by 5.6e-6 of the scale (order 2: 8e-7). */
#define TOLERANCE_ORDER_2 2e-6
#define TOLERANCE_ORDER_3 2e-5

static float *read_all(const safetensors *io, const char *name, int64_t count)
{
    float *data = malloc((size_t)count * sizeof(float));
    const safetensors_entry *e = safetensors_find(io, name);
    int64_t numel = 1;
    for (int d = 0; e && d < e->ndim; d++) numel *= e->shape[d];
    CHECK_MSG(e && numel == count && safetensors_read_f32(io, name, e->ndim, e->shape, data) == 0,
              "%s: %s", name, e ? error_message() : "missing");
    return data;
}

/* One case "<config>.<steps>[.from<start>]": the schedule, then the run. */
static void check_case(const safetensors *io, const float *sample, const char *config_name, int steps, int start)
{
    char tag[160], name[200], path[300];
    snprintf(tag, sizeof tag, start ? "%s.%d.from%d" : "%s.%d", config_name, steps, start);
    snprintf(path, sizeof path, "%s/%s/scheduler_config.json", FIXTURE, config_name);
    scheduler_config cfg;
    scheduler s = {0};
    CHECK_MSG(scheduler_load(&cfg, path) == 0, "%s", error_message());
    int lcm = cfg.kind == SCHEDULER_FLOW_MATCH_LCM;
    CHECK_MSG(cfg.kind == SCHEDULER_UNIPC || lcm, "%s: read as neither UniPC nor LCM", tag);
    CHECK_MSG(scheduler_set_timesteps(&s, &cfg, steps, 0, NULL) == 0, "%s: %s", tag, error_message());

    snprintf(name, sizeof name, "%s.sigmas", tag);
    float *sigmas = read_all(io, name, steps + 1);
    snprintf(name, sizeof name, "%s.timesteps", tag);
    float *timesteps = read_all(io, name, steps);
    int schedule_diffs = 0;
    for (int i = 0; i <= steps; i++) schedule_diffs += scheduler_sigma(&s, i) != (double)sigmas[i];
    for (int i = 0; i < steps; i++) schedule_diffs += scheduler_timestep(&s, i) != (double)timesteps[i];
    CHECK_MSG(schedule_diffs == 0, "%s: %d sigmas or timesteps differ from diffusers'", tag, schedule_diffs);

    int run = steps - start;
    snprintf(name, sizeof name, "%s.velocity", tag);
    float *velocity = read_all(io, name, (int64_t)run * SAMPLE);
    snprintf(name, sizeof name, "%s.samples", tag);
    float *want = read_all(io, name, (int64_t)run * SAMPLE), *noise = NULL;
    if (lcm) {
        snprintf(name, sizeof name, "%s.noise", tag);
        noise = read_all(io, name, (int64_t)run * SAMPLE);
    }
    float x[SAMPLE];
    memcpy(x, sample, sizeof x);
    scheduler_history h;
    CHECK_MSG(scheduler_history_init(&h, &s, SAMPLE, 0) == 0, "%s", error_message());
    double worst = 0;
    int worst_step = -1;
    for (int i = start; i < steps; i++) {
        const float *v = velocity + (size_t)(i - start) * SAMPLE;
        if (lcm) scheduler_lcm_step(&s, i, v, noise + (size_t)(i - start) * SAMPLE, x, SAMPLE);
        else scheduler_step(&s, &h, i, v, x, SAMPLE);
        const float *expected = want + (size_t)(i - start) * SAMPLE;
        double diff = test_max_abs_diff(x, expected, SAMPLE) / fmax(test_max_abs(expected, SAMPLE), 1e-30);
        if (!(diff <= worst)) worst = diff, worst_step = i;
    }
    printf("  %-34s %2d steps: schedule exact, samples within %.2g of their scale (worst at step %d)\n", tag, run,
           worst, worst_step);
    double tolerance = lcm ? 0 : cfg.unipc.solver_order < 3 ? TOLERANCE_ORDER_2 : TOLERANCE_ORDER_3;
    CHECK_MSG(worst <= tolerance, "%s: step %d's sample differs from diffusers' by %.3g of its scale", tag,
              worst_step, worst);
    scheduler_history_free(&h);
    scheduler_free(&s);
    free(sigmas), free(timesteps), free(velocity), free(want), free(noise);
}

static const char *write_config(const char *json)
{
    static char dir[64], path[128];
    if (!dir[0]) {
        strcpy(dir, "/tmp/moedit_scheduler_runs_XXXXXX");
        CHECK(mkdtemp(dir) != NULL);
    }
    snprintf(path, sizeof path, "%s/scheduler_config.json", dir);
    FILE *f = fopen(path, "w");
    fputs(json, f);
    fclose(f);
    return path;
}

/* HiDream-I1-Full's config with `keys` added or replaced. */
static void check_refusal(const char *what, const char *keys, const char *phrase)
{
    static const char *const base[] = {"\"prediction_type\": \"flow_prediction\"", "\"use_flow_sigmas\": true",
                                       "\"flow_shift\": 3.0"};
    char json[512] = "{\"_class_name\": \"UniPCMultistepScheduler\"";
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++) {
        size_t key_length = strchr(base[i], ':') - base[i];
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)key_length, base[i]);
        if (!strstr(keys, key)) snprintf(json + strlen(json), sizeof json - strlen(json), ", %s", base[i]);
    }
    snprintf(json + strlen(json), sizeof json - strlen(json), ", %s}", keys);
    scheduler_config cfg;
    error_clear();
    int rc = scheduler_load(&cfg, write_config(json));
    printf("  %-34s -> %s\n", what, error_message());
    CHECK_MSG(rc == -1 && strstr(error_message(), phrase) && strstr(error_message(), "scheduler_config.json"),
              "%s: expected an error naming \"%s\", got %d: %s", what, phrase, rc, error_message());
}

/* In a run, LCM's step i draws stream SCHEDULER_NOISE_STREAM + i of the run's
 * seed (the contract that makes every rank and layout draw the same). */
static void check_lcm_noise_streams(void)
{
    scheduler_config cfg;
    scheduler s = {0};
    CHECK(scheduler_load(&cfg, FIXTURE "/hidream_fast_lcm/scheduler_config.json") == 0);
    CHECK(scheduler_set_timesteps(&s, &cfg, 4, 0, NULL) == 0);
    float run[SAMPLE], by_hand[SAMPLE], other_seed[SAMPLE], velocity[SAMPLE], noise[SAMPLE];
    for (int j = 0; j < SAMPLE; j++) run[j] = by_hand[j] = other_seed[j] = 0.1f * (float)j, velocity[j] = 0.5f;
    scheduler_history h, h2;
    CHECK(scheduler_history_init(&h, &s, SAMPLE, 42) == 0 && scheduler_history_init(&h2, &s, SAMPLE, 43) == 0);
    for (int i = 0; i < 3; i++) {
        scheduler_step(&s, &h, i, velocity, run, SAMPLE);
        scheduler_step(&s, &h2, i, velocity, other_seed, SAMPLE);
        philox_fill_normal(42, SCHEDULER_NOISE_STREAM + (uint64_t)i, 0, SAMPLE, noise);
        scheduler_lcm_step(&s, i, velocity, noise, by_hand, SAMPLE);
    }
    CHECK_MSG(memcmp(run, by_hand, sizeof run) == 0, "LCM's run does not draw stream SCHEDULER_NOISE_STREAM + step");
    CHECK_MSG(memcmp(run, other_seed, sizeof run) != 0, "LCM's noise does not depend on the seed");
    printf("  %-34s -> streams SCHEDULER_NOISE_STREAM + step of the run's seed\n", "LCM noise");
    scheduler_history_free(&h), scheduler_history_free(&h2);
    scheduler_free(&s);
}

/* LCM's upscaling between steps (multi-resolution sampling) is not run. */
static void check_lcm_refusal(void)
{
    scheduler_config cfg;
    int rc = scheduler_load(&cfg, write_config("{\"_class_name\": \"FlowMatchLCMScheduler\", \"shift\": 3.0, "
                                              "\"scale_factors\": [1.5, 2.0]}"));
    printf("  %-34s -> %s\n", "LCM scale_factors", error_message());
    CHECK_MSG(rc == -1 && strstr(error_message(), "scale_factors"), "LCM with scale_factors: %d %s", rc,
              error_message());
}

static void check_refusals(void)
{
    scheduler_config cfg;
    CHECK_MSG(scheduler_load(&cfg, write_config("{\"_class_name\": \"UniPCMultistepScheduler\"}")) == -1 &&
                  strstr(error_message(), "prediction_type"),
              "an epsilon-prediction UniPC was accepted: %s", error_message());
    printf("  %-34s -> %s\n", "epsilon prediction", error_message());
    check_refusal("no flow sigmas", "\"use_flow_sigmas\": false", "use_flow_sigmas");
    check_refusal("order 4", "\"solver_order\": 4", "solver_order");
    check_refusal("order 0", "\"solver_order\": 0", "solver_order");
    check_refusal("solver_type", "\"solver_type\": \"bh3\"", "solver_type");
    check_refusal("final_sigmas_type", "\"final_sigmas_type\": \"one\"", "final_sigmas_type");
    check_refusal("thresholding", "\"thresholding\": true", "thresholding");
    check_refusal("karras sigmas", "\"use_karras_sigmas\": true", "use_karras_sigmas");
    check_refusal("dynamic shifting", "\"use_dynamic_shifting\": true", "use_dynamic_shifting");
    check_refusal("predict_x0 false", "\"predict_x0\": false", "predict_x0");
    check_refusal("flow_shift 0", "\"flow_shift\": 0", "flow_shift");
    check_refusal("no lower order at a zero end", "\"lower_order_final\": false", "lower_order_final");
    check_refusal("bh1 at a zero end", "\"solver_type\": \"bh1\"", "bh1");
    check_refusal("17 disabled correctors",
                  "\"disable_corrector\": [0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]", "disable_corrector");

    /* shift_terminal cannot stretch one step (diffusers: NaN); custom sigmas are Euler's. */
    scheduler s = {0};
    CHECK(scheduler_load(&cfg, FIXTURE "/shift_terminal/scheduler_config.json") == 0);
    CHECK_MSG(scheduler_set_timesteps(&s, &cfg, 1, 0, NULL) == -1 && strstr(error_message(), "shift_terminal"),
              "shift_terminal with one step: %s", error_message());
    printf("  %-34s -> %s\n", "shift_terminal, one step", error_message());
    check_lcm_refusal();
    /* flow_shift 1e6 leaves the first sigmas no room in float32 (diffusers: an assertion fails). */
    CHECK(scheduler_load(&cfg, write_config("{\"_class_name\": \"UniPCMultistepScheduler\", \"prediction_type\": "
                                            "\"flow_prediction\", \"use_flow_sigmas\": true, \"flow_shift\": 1e6}")) == 0);
    CHECK_MSG(scheduler_set_timesteps(&s, &cfg, 30, 0, NULL) == -1 && strstr(error_message(), "do not decrease"),
              "flow_shift 1e6: %s", error_message());
    printf("  %-34s -> %s\n", "flow_shift 1e6, 30 steps", error_message());
    check_lcm_noise_streams();
    double custom[2] = {1.0, 0.5};
    CHECK_MSG(scheduler_set_timesteps(&s, &cfg, 2, 0, custom) == -1 && strstr(error_message(), "custom sigmas"),
              "custom sigmas with UniPC: %s", error_message());
    printf("  %-34s -> %s\n", "custom sigmas", error_message());
    scheduler_free(&s);
}

int main(void)
{
    safetensors *io = NULL;
    CHECK_MSG(safetensors_open(&io, FIXTURE "/io.safetensors") == 0, "%s", error_message());
    if (!io) return test_finish("test_scheduler_runs");
    float *sample = read_all(io, "sample", SAMPLE);
    int cases = 0;
    /* Every "<config>.<steps>[.from<start>].samples" tensor is a case. */
    for (int i = 0; i < safetensors_count(io); i++) {
        const char *name = safetensors_entry_at(io, i)->name;
        size_t len = strlen(name);
        if (len < 8 || strcmp(name + len - 8, ".samples") != 0) continue;
        char config_name[96];
        int steps = 0, start = 0;
        const char *dot = strchr(name, '.');
        snprintf(config_name, sizeof config_name, "%.*s", (int)(dot - name), name);
        if (sscanf(dot, ".%d.from%d", &steps, &start) < 1) continue;
        check_case(io, sample, config_name, steps, start);
        cases++;
    }
    CHECK_MSG(cases == 37, "the fixture holds %d cases, expected 37", cases);
    check_refusals();
    free(sample);
    safetensors_close(io);
    return test_finish("test_scheduler_runs");
}
