/* The flow-matching Euler scheduler reproduces diffusers'
 * FlowMatchEulerDiscreteScheduler on the committed fixtures
 * (tools/make_scheduler_fixtures.py): for each config (HiDream static shift 3
 * and 6, FLUX dynamic shifting with custom sigmas, linear time shift,
 * shift_terminal, LTX, inverted sigmas, karras and exponential spacing) at 1,
 * 7, 30 and 50 steps, the sigmas and timesteps are diffusers' float32 values
 * bit for bit, mu equals calculate_shift's, one Euler step and scale_noise at
 * the img2img start are bit-exact, and the img2img start index agrees. Where
 * diffusers produces NaN sigmas (shift_terminal with one step) moedit refuses.
 * Then every refusal says what is wrong: bad configs, step counts, custom
 * sigmas, mu and strengths. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "pipelines/scheduler.h"
#include "tests/test_util.h"

#define MAX_CASES 8
#define MAX_CONFIGS 32

/* Largest |a - b| over n doubles, and how many differ at all. */
static double max_diff(const double *a, const float *b, int n, int *differing)
{
    double worst = 0;
    *differing = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs(a[i] - (double)b[i]);
        if (d != 0) *differing += 1;
        if (!(d <= worst)) worst = d;
    }
    return worst;
}

static float *read_vector(const safetensors *io, const char *name, int64_t n)
{
    float *data = malloc((size_t)n * sizeof(float));
    if (safetensors_read_f32(io, name, 1, &n, data) == 0) return data;
    CHECK_MSG(0, "%s", error_message());
    free(data);
    return NULL;
}

/* [4, 4, 4] of the fixture, flattened. */
static float *read_sample(const safetensors *io, const char *name, int64_t *n)
{
    const safetensors_entry *e = safetensors_find(io, name);
    CHECK_MSG(e != NULL, "fixture lacks %s", name);
    if (!e) return NULL;
    *n = 1;
    for (int i = 0; i < e->ndim; i++) *n *= e->shape[i];
    float *data = malloc((size_t)*n * sizeof(float));
    CHECK_MSG(safetensors_read_f32(io, name, e->ndim, e->shape, data) == 0, "%s", error_message());
    return data;
}

typedef struct shared_inputs {
    const float *sample, *velocity, *noise;
    int64_t n;
} shared_inputs;

typedef struct fixture_call {
    int64_t steps[MAX_CASES], step_index[MAX_CASES], start_index[MAX_CASES], fails[MAX_CASES];
    int cases;
    int64_t image_seq_len;
    double mu, strength;
    int custom;
} fixture_call;

static int read_call(fixture_call *call, const char *path)
{
    config *c;
    if (config_load(&c, path)) return -1;
    int n1, n2, n3, n4;
    int rc = config_get_int_array(c, "steps", call->steps, MAX_CASES, &n1) ||
             config_get_int_array(c, "step_index", call->step_index, MAX_CASES, &n2) ||
             config_get_int_array(c, "start_index", call->start_index, MAX_CASES, &n3) ||
             config_get_int_array(c, "fails", call->fails, MAX_CASES, &n4) ||
             config_get_int(c, "image_seq_len", &call->image_seq_len) || config_get_float(c, "mu", &call->mu) ||
             config_get_float(c, "strength", &call->strength) || config_get_bool(c, "custom_sigmas", &call->custom);
    config_free(c);
    if (rc) return -1;
    if (n1 != n2 || n1 != n3 || n1 != n4) return error_set("%s: per-steps arrays differ in length", path);
    call->cases = n1;
    return 0;
}

/* One Euler step and the img2img noising of case `tag`, bit-exact. */
static void check_sampling(const char *tag, const scheduler *s, const safetensors *io, const shared_inputs *in,
                           const fixture_call *call, int k)
{
    char name[160];
    int64_t n = in->n;
    float *got = malloc((size_t)n * sizeof(float));

    snprintf(name, sizeof name, "%s.step", tag);
    int64_t m = 0;
    float *want = read_sample(io, name, &m);
    memcpy(got, in->sample, (size_t)n * sizeof(float));
    scheduler_step(s, NULL, (int)call->step_index[k], in->velocity, got, n);
    double diff = want && m == n ? test_max_abs_diff(got, want, n) : INFINITY;
    CHECK_MSG(diff == 0, "%s: Euler step %lld differs from diffusers by %.3g", tag, (long long)call->step_index[k],
              diff);
    free(want);

    int start = -1;
    CHECK_MSG(scheduler_start_index(s, call->strength, &start) == 0, "%s", error_message());
    CHECK_MSG(start == call->start_index[k], "%s: img2img start %d, diffusers %lld", tag, start,
              (long long)call->start_index[k]);
    snprintf(name, sizeof name, "%s.scale_noise", tag);
    want = read_sample(io, name, &m);
    scheduler_scale_noise(s, start, in->sample, in->noise, got, n);
    diff = want && m == n && start >= 0 ? test_max_abs_diff(got, want, n) : INFINITY;
    CHECK_MSG(diff == 0, "%s: scale_noise differs from diffusers by %.3g", tag, diff);
    free(want);
    free(got);
}

/* Schedule k of one config: sigmas and timesteps equal diffusers'. */
static void check_case(const char *config_name, const scheduler_config *cfg, const fixture_call *call, int k,
                       const safetensors *io, const shared_inputs *in, int *exact_cases)
{
    int steps = (int)call->steps[k];
    char tag[96], name[160];
    snprintf(tag, sizeof tag, "%s.%d", config_name, steps);
    double *custom = NULL;
    if (call->custom) {
        snprintf(name, sizeof name, "%s.custom_sigmas", tag);
        float *values = read_vector(io, name, steps);
        custom = malloc((size_t)steps * sizeof(double));
        for (int i = 0; values && i < steps; i++) custom[i] = values[i];
        free(values);
    }
    scheduler s = {0};
    int rc = scheduler_set_timesteps(&s, cfg, steps, call->image_seq_len, custom);
    if (call->fails[k]) {
        CHECK_MSG(rc == -1, "%s: diffusers gives NaN sigmas; moedit must refuse", tag);
        printf("  %-26s refused as expected: %s\n", tag, error_message());
        free(custom);
        scheduler_free(&s);
        return;
    }
    CHECK_MSG(rc == 0, "%s: %s", tag, error_message());
    if (rc) {
        free(custom);
        return;
    }

    snprintf(name, sizeof name, "%s.sigmas", tag);
    float *want_sigmas = read_vector(io, name, steps + 1);
    snprintf(name, sizeof name, "%s.timesteps", tag);
    float *want_timesteps = read_vector(io, name, steps);
    int sigma_differing = -1, timestep_differing = -1;
    double sigma_diff = want_sigmas ? max_diff(s.sigmas, want_sigmas, steps + 1, &sigma_differing) : INFINITY;
    double timestep_diff =
        want_timesteps ? max_diff(s.timesteps, want_timesteps, steps, &timestep_differing) : INFINITY;
    CHECK_MSG(sigma_diff <= 1e-6 && timestep_diff <= 1e-6, "%s: sigmas differ by %.3g, timesteps by %.3g", tag,
              sigma_diff, timestep_diff);
    CHECK_MSG(sigma_differing == 0 && timestep_differing == 0,
              "%s: %d sigmas and %d timesteps are not diffusers' float32 values", tag, sigma_differing,
              timestep_differing);
    if (sigma_differing == 0 && timestep_differing == 0) *exact_cases += 1;
    CHECK(scheduler_timestep(&s, steps - 1) == s.timesteps[steps - 1]);
    CHECK(scheduler_sigma(&s, steps) == (cfg->invert_sigmas ? 1.0 : 0.0));

    /* The general form with diffusers' mu gives the same schedule. */
    scheduler again = {0};
    CHECK_MSG(scheduler_set_timesteps_with_mu(&again, cfg, steps, call->mu, custom, custom ? steps : 0) == 0, "%s",
              error_message());
    CHECK(again.sigmas && memcmp(again.sigmas, s.sigmas, (size_t)(steps + 1) * sizeof(double)) == 0);
    scheduler_free(&again);

    check_sampling(tag, &s, io, in, call, k);
    free(want_sigmas), free(want_timesteps), free(custom);
    scheduler_free(&s);
}

static void check_fixture_config(const char *config_name, const safetensors *io, const shared_inputs *in,
                                 int *cases, int *exact_cases)
{
    char path[600];
    scheduler_config cfg;
    fixture_call call;
    snprintf(path, sizeof path, "%s/scheduler/%s/scheduler_config.json", MOEDIT_FIXTURES, config_name);
    CHECK_MSG(scheduler_load(&cfg, path) == 0, "%s", error_message());
    snprintf(path, sizeof path, "%s/scheduler/%s/call.json", MOEDIT_FIXTURES, config_name);
    CHECK_MSG(read_call(&call, path) == 0, "%s", error_message());
    if (test_failures) return;
    double mu = scheduler_mu(&cfg, call.image_seq_len);
    CHECK_MSG(mu == call.mu, "%s: mu %.17g, calculate_shift %.17g", config_name, mu, call.mu);
    for (int k = 0; k < call.cases; k++) {
        check_case(config_name, &cfg, &call, k, io, in, exact_cases);
        *cases += 1;
    }
    printf("  %-26s steps 1/7/30/50 checked (mu %.6g%s)\n", config_name, mu,
           cfg.use_dynamic_shifting ? "" : ", unused");
}

static void check_fixtures(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/scheduler/fixture.json", MOEDIT_FIXTURES);
    config *info = NULL;
    const char *names[MAX_CONFIGS];
    int count = 0;
    CHECK_MSG(config_load(&info, path) == 0, "%s", error_message());
    if (!info) return;
    CHECK_MSG(config_get_string_array(info, "configs", names, MAX_CONFIGS, &count) == 0, "%s", error_message());

    safetensors *io = NULL;
    snprintf(path, sizeof path, "%s/scheduler/io.safetensors", MOEDIT_FIXTURES);
    CHECK_MSG(safetensors_open(&io, path) == 0, "%s", error_message());
    shared_inputs in = {0};
    int64_t n_velocity = 0, n_noise = 0;
    float *sample = io ? read_sample(io, "sample", &in.n) : NULL;
    float *velocity = io ? read_sample(io, "velocity", &n_velocity) : NULL;
    float *noise = io ? read_sample(io, "noise", &n_noise) : NULL;
    CHECK(sample && velocity && noise && n_velocity == in.n && n_noise == in.n);
    in.sample = sample, in.velocity = velocity, in.noise = noise;

    int cases = 0, exact = 0;
    for (int i = 0; i < count && !test_failures; i++) check_fixture_config(names[i], io, &in, &cases, &exact);
    printf("  %d configs, %d schedules; %d of the successful ones bit-exact\n", count, cases, exact);
    CHECK(count >= 10);
    free(sample), free(velocity), free(noise);
    safetensors_close(io);
    config_free(info);
}

/* ---- refusals ------------------------------------------------------------ */

static char temp_dir[] = "/tmp/moedit_test_scheduler_XXXXXX";

static const char *write_config(const char *text)
{
    static char path[600];
    snprintf(path, sizeof path, "%s/scheduler_config.json", temp_dir);
    FILE *fp = fopen(path, "wb");
    if (fp) fputs(text, fp), fclose(fp);
    return path;
}

/* rc is -1 and the message contains both phrases (phrase2 may be NULL). */
static void check_error(int rc, const char *what, const char *phrase, const char *phrase2)
{
    const char *msg = error_message();
    printf("  %-34s -> %s\n", what, msg);
    CHECK_MSG(rc == -1, "%s: expected failure, got %d", what, rc);
    CHECK_MSG(strstr(msg, phrase) != NULL, "%s: message lacks \"%s\": %s", what, phrase, msg);
    CHECK_MSG(!phrase2 || strstr(msg, phrase2) != NULL, "%s: message lacks \"%s\": %s", what, phrase2, msg);
}

static void check_bad_config(const char *what, const char *json, const char *phrase, const char *phrase2)
{
    scheduler_config cfg;
    const char *path = write_config(json);
    check_error(scheduler_load(&cfg, path), what, phrase, phrase2);
    CHECK_MSG(strstr(error_message(), "scheduler_config.json") != NULL, "%s: message lacks the file", what);
}

static void check_config_refusals(void)
{
    check_bad_config("stochastic_sampling", "{\"stochastic_sampling\": true}", "stochastic_sampling", "not supported");
    check_bad_config("use_beta_sigmas", "{\"use_beta_sigmas\": true}", "use_beta_sigmas", "not supported");
    check_bad_config("karras and exponential", "{\"use_karras_sigmas\": true, \"use_exponential_sigmas\": true}",
                     "only one of", NULL);
    check_bad_config("time_shift_type", "{\"time_shift_type\": \"cosine\"}", "time_shift_type", "cosine");
    check_bad_config("another scheduler", "{\"_class_name\": \"DDIMScheduler\"}", "DDIMScheduler",
                     "FlowMatchLCMScheduler and UniPCMultistepScheduler");
    check_bad_config("shift_terminal 1", "{\"shift_terminal\": 1.0}", "shift_terminal", NULL);
    check_bad_config("shift 0", "{\"shift\": 0}", "\"shift\"", NULL);
    check_bad_config("shift as a string", "{\"shift\": \"3.0\"}", "\"shift\"", "a number");
    check_bad_config("num_train_timesteps 0", "{\"num_train_timesteps\": 0}", "num_train_timesteps", NULL);
    check_bad_config("dynamic, equal seq lens",
                     "{\"use_dynamic_shifting\": true, \"base_image_seq_len\": 256, \"max_image_seq_len\": 256}",
                     "max_image_seq_len", NULL);
    scheduler_config cfg;
    check_error(scheduler_load(&cfg, "/nonexistent/scheduler_config.json"), "missing file",
                "/nonexistent/scheduler_config.json", NULL);

    /* Absent and null keys take diffusers' defaults. */
    CHECK_MSG(scheduler_load(&cfg, write_config("{\"shift_terminal\": null, \"base_shift\": null}")) == 0, "%s",
              error_message());
    scheduler_config defaults;
    scheduler_config_default(&defaults);
    CHECK(cfg.num_train_timesteps == defaults.num_train_timesteps && cfg.shift == defaults.shift &&
          cfg.use_dynamic_shifting == defaults.use_dynamic_shifting && cfg.base_shift == defaults.base_shift &&
          cfg.max_shift == defaults.max_shift && cfg.base_image_seq_len == defaults.base_image_seq_len &&
          cfg.max_image_seq_len == defaults.max_image_seq_len && cfg.time_shift_type == defaults.time_shift_type &&
          cfg.invert_sigmas == defaults.invert_sigmas && cfg.shift_terminal == defaults.shift_terminal &&
          cfg.spacing == defaults.spacing);
}

static void check_request_refusals(void)
{
    scheduler_config cfg, dynamic;
    scheduler_config_default(&cfg);
    dynamic = cfg;
    dynamic.use_dynamic_shifting = 1;
    scheduler s = {0};
    CHECK(scheduler_set_timesteps(&s, &cfg, 4, 0, NULL) == 0);
    /* shift 1: linspace(1000, 1, 4) / 1000 */
    CHECK(s.steps == 4 && s.sigmas[0] == 1.0 && s.sigmas[3] == (double)0.001f && s.sigmas[4] == 0.0);
    CHECK(s.timesteps[0] == 1000.0 && s.timesteps[3] == 1.0);

    check_error(scheduler_set_timesteps(&s, &cfg, 0, 0, NULL), "0 steps", "num_inference_steps 0", NULL);
    check_error(scheduler_set_timesteps(&s, &cfg, SCHEDULER_MAX_STEPS + 1, 0, NULL), "10001 steps", "10001", NULL);
    double custom[4] = {1.0, 0.75, 0.5, 0.25};
    check_error(scheduler_set_timesteps_with_mu(&s, &cfg, 4, NAN, custom, 3), "3 sigmas for 4 steps",
                "3 custom sigmas for 4", NULL);
    custom[2] = 1.5;
    check_error(scheduler_set_timesteps(&s, &cfg, 4, 0, custom), "custom sigma 1.5", "custom sigma 2", "1.5");
    custom[2] = NAN;
    check_error(scheduler_set_timesteps(&s, &cfg, 4, 0, custom), "custom sigma NaN", "custom sigma 2", NULL);
    check_error(scheduler_set_timesteps_with_mu(&s, &dynamic, 4, NAN, NULL, 0), "dynamic without mu",
                "use_dynamic_shifting", "mu");
    /* A refused request leaves the schedule as it was. */
    CHECK(s.steps == 4 && s.sigmas[3] == (double)0.001f);

    int start = -7;
    check_error(scheduler_start_index(&s, 0.0, &start), "strength 0", "strength 0", NULL);
    check_error(scheduler_start_index(&s, 1.5, &start), "strength 1.5", "strength 1.5", NULL);
    check_error(scheduler_start_index(&s, 1e-300, &start), "strength 1e-300", "none of the 4", NULL);
    CHECK(start == -7);
    CHECK(scheduler_start_index(&s, 1.0, &start) == 0 && start == 0);
    CHECK(scheduler_start_index(&s, 0.5, &start) == 0 && start == 2);

    /* Setting again replaces the schedule (ASan: the old arrays are freed). */
    CHECK(scheduler_set_timesteps(&s, &dynamic, 2, 4096, NULL) == 0 && s.steps == 2 &&
          s.mu == scheduler_mu(&dynamic, 4096));
    scheduler_free(&s);
    CHECK(s.sigmas == NULL && s.steps == 0);
}

int main(void)
{
    check_fixtures();
    if (!mkdtemp(temp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    check_config_refusals();
    check_request_refusals();
    unlink(write_config("{}"));
    rmdir(temp_dir);
    return test_finish("test_scheduler");
}
