/* diffusers' FlowMatchEulerDiscreteScheduler, FlowMatchLCMScheduler (Euler's
 * schedule, a noisy step) and UniPCMultistepScheduler's schedule (its config
 * and step: scheduler_unipc.c); see scheduler.h.
 *
 * The schedule is built in one double array w[N] that follows diffusers'
 * set_timesteps line by line. While w holds float32 values (custom sigmas)
 * the arithmetic is float32, rounding after every operation as NumPy does;
 * otherwise it is float64. Nothing here may fuse a multiply and an add:
 * NumPy and PyTorch round the product before the sum, and a fused
 * multiply-add (aarch64, or x86 with -march=native) changes the last bit.
 * The pragmas below keep GCC from fusing at any -ffp-contract and clang at
 * its default; clang's explicit -ffp-contract=fast overrides them. */
#include "pipelines/scheduler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/error.h"
#include "core/host_parallel.h"
#include "core/philox.h"
#include "pipelines/scheduler_unipc.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define SCHEDULER_CLASS "FlowMatchEulerDiscreteScheduler"
#define UNIPC_CLASS "UniPCMultistepScheduler"
#define LCM_CLASS "FlowMatchLCMScheduler"

void scheduler_config_default(scheduler_config *cfg)
{
    *cfg = (scheduler_config){
        .num_train_timesteps = 1000,
        .shift = 1.0,
        .use_dynamic_shifting = 0,
        .base_shift = 0.5,
        .max_shift = 1.15,
        .base_image_seq_len = 256,
        .max_image_seq_len = 4096,
        .time_shift_type = SCHEDULER_TIME_SHIFT_EXPONENTIAL,
        .invert_sigmas = 0,
        .shift_terminal = 0.0,
        .spacing = SCHEDULER_SPACING_PLAIN,
    };
}

/* ---- scheduler_config.json ---------------------------------------------- */

static int read_numbers(scheduler_config *cfg, const config *c)
{
    if (config_get_int_or(c, "num_train_timesteps", cfg->num_train_timesteps, &cfg->num_train_timesteps) ||
        config_get_float_or(c, "shift", cfg->shift, &cfg->shift) ||
        config_get_bool_or(c, "use_dynamic_shifting", cfg->use_dynamic_shifting, &cfg->use_dynamic_shifting) ||
        config_get_float_or(c, "base_shift", cfg->base_shift, &cfg->base_shift) ||
        config_get_float_or(c, "max_shift", cfg->max_shift, &cfg->max_shift) ||
        config_get_int_or(c, "base_image_seq_len", cfg->base_image_seq_len, &cfg->base_image_seq_len) ||
        config_get_int_or(c, "max_image_seq_len", cfg->max_image_seq_len, &cfg->max_image_seq_len) ||
        config_get_bool_or(c, "invert_sigmas", cfg->invert_sigmas, &cfg->invert_sigmas) ||
        config_get_float_or(c, "shift_terminal", cfg->shift_terminal, &cfg->shift_terminal))
        return -1;
    const char *path = config_path(c);
    if (cfg->num_train_timesteps < 1 || cfg->num_train_timesteps > (1 << 24))
        return error_set("%s: key \"num_train_timesteps\" must be in [1, 2^24], got %lld", path,
                         (long long)cfg->num_train_timesteps);
    if (!(cfg->shift > 0) || !isfinite(cfg->shift))
        return error_set("%s: key \"shift\" must be a positive number, got %g", path, cfg->shift);
    if (!isfinite(cfg->base_shift) || !isfinite(cfg->max_shift))
        return error_set("%s: keys \"base_shift\" and \"max_shift\" must be finite", path);
    if (!(cfg->shift_terminal >= 0 && cfg->shift_terminal < 1))
        return error_set("%s: key \"shift_terminal\" must be in [0, 1) (or null), got %g", path, cfg->shift_terminal);
    if (cfg->use_dynamic_shifting && cfg->max_image_seq_len == cfg->base_image_seq_len)
        return error_set("%s: dynamic shifting needs \"max_image_seq_len\" != \"base_image_seq_len\", both are %lld",
                         path, (long long)cfg->base_image_seq_len);
    return 0;
}

static int read_choices(scheduler_config *cfg, const config *c)
{
    const char *path = config_path(c), *time_shift;
    int karras, exponential, beta, stochastic;
    if (config_get_string_or(c, "time_shift_type", "exponential", &time_shift) ||
        config_get_bool_or(c, "use_karras_sigmas", 0, &karras) ||
        config_get_bool_or(c, "use_exponential_sigmas", 0, &exponential) ||
        config_get_bool_or(c, "use_beta_sigmas", 0, &beta) ||
        config_get_bool_or(c, "stochastic_sampling", 0, &stochastic))
        return -1;
    if (strcmp(time_shift, "exponential") == 0) cfg->time_shift_type = SCHEDULER_TIME_SHIFT_EXPONENTIAL;
    else if (strcmp(time_shift, "linear") == 0) cfg->time_shift_type = SCHEDULER_TIME_SHIFT_LINEAR;
    else
        return error_set("%s: key \"time_shift_type\" must be \"exponential\" or \"linear\", got \"%s\"", path,
                         time_shift);
    if (karras + exponential + beta > 1)
        return error_set("%s: only one of \"use_karras_sigmas\", \"use_exponential_sigmas\", \"use_beta_sigmas\" "
                         "may be true", path);
    if (beta) return error_set("%s: key \"use_beta_sigmas\" is true: beta sigmas are not supported", path);
    if (stochastic)
        return error_set("%s: key \"stochastic_sampling\" is true: stochastic sampling is not supported", path);
    cfg->spacing = karras ? SCHEDULER_SPACING_KARRAS
                 : exponential ? SCHEDULER_SPACING_EXPONENTIAL
                 : SCHEDULER_SPACING_PLAIN;
    return 0;
}

int scheduler_load(scheduler_config *cfg, const char *path)
{
    config *c;
    const char *class_name;
    if (config_load(&c, path)) return -1;
    scheduler_config_default(cfg);
    int rc = config_get_string_or(c, "_class_name", SCHEDULER_CLASS, &class_name);
    if (rc == 0 && strcmp(class_name, SCHEDULER_CLASS) == 0) {
        rc = read_choices(cfg, c) || read_numbers(cfg, c) ? -1 : 0;
    } else if (rc == 0 && strcmp(class_name, LCM_CLASS) == 0) {
        /* Euler's keys and schedule; its multi-resolution sampling is not supported. */
        cfg->kind = SCHEDULER_FLOW_MATCH_LCM;
        rc = read_choices(cfg, c) || read_numbers(cfg, c) ? -1 : 0;
        if (rc == 0 && config_has(c, "scale_factors"))
            rc = error_set("%s: key \"scale_factors\" is set: FlowMatchLCMScheduler's upscaling between steps is "
                           "not supported", path);
    } else if (rc == 0 && strcmp(class_name, UNIPC_CLASS) == 0) {
        cfg->kind = SCHEDULER_UNIPC;
        rc = read_numbers(cfg, c) || scheduler_unipc_read(cfg, c) ? -1 : 0;
    } else if (rc == 0) {
        rc = error_set("%s: _class_name is \"%s\"; moedit implements %s, %s and %s (flow matching)", path,
                       class_name, SCHEDULER_CLASS, LCM_CLASS, UNIPC_CLASS);
    }
    config_free(c);
    return rc;
}

/* ---- mu ----------------------------------------------------------------- */

double scheduler_calculate_shift(int64_t image_seq_len, int64_t base_seq_len, int64_t max_seq_len, double base_shift,
                                 double max_shift)
{
    double m = (max_shift - base_shift) / (double)(max_seq_len - base_seq_len);
    double b = base_shift - m * (double)base_seq_len;
    return (double)image_seq_len * m + b;
}

double scheduler_mu(const scheduler_config *cfg, int64_t image_seq_len)
{
    return scheduler_calculate_shift(image_seq_len, cfg->base_image_seq_len, cfg->max_image_seq_len, cfg->base_shift,
                                     cfg->max_shift);
}

/* ---- the schedule ------------------------------------------------------- */

/* np.linspace(start, stop, n): i * step + start, the last one exactly stop. */
static void linspace(double start, double stop, int n, double *out)
{
    double delta = stop - start;
    if (n == 1) {
        out[0] = 0.0 * delta + start;
        return;
    }
    double step = delta / (n - 1);
    for (int i = 0; i < n; i++)
        out[i] = (step == 0 ? (double)i / (n - 1) * delta : (double)i * step) + start;
    out[n - 1] = stop;
}

/* The static shift of __init__, on a float32 torch tensor. */
static float shift_static_f32(double shift, float s)
{
    float scaled = (float)shift * s;
    float denominator = 1.0f + (float)(shift - 1.0) * s;
    return scaled / denominator;
}

/* Step 1 for sigmas=None: linspace between the ends of the training
 * schedule (float32, shifted when not dynamic), divided by T. */
static void default_sigmas(const scheduler_config *cfg, int n, double *w)
{
    double T = (double)cfg->num_train_timesteps;
    float sigma_max = (float)T / (float)T, sigma_min = 1.0f / (float)T;
    if (!cfg->use_dynamic_shifting) {
        sigma_max = shift_static_f32(cfg->shift, sigma_max);
        sigma_min = shift_static_f32(cfg->shift, sigma_min);
    }
    linspace((double)sigma_max * T, (double)sigma_min * T, n, w);
    for (int i = 0; i < n; i++) w[i] = w[i] / T;
}

/* Step 2: static or dynamic (mu) shift. */
static void shift_sigmas(const scheduler_config *cfg, double mu, int f32, int n, double *w)
{
    if (!cfg->use_dynamic_shifting) {
        double shift = cfg->shift;
        for (int i = 0; i < n; i++) {
            if (f32) w[i] = shift_static_f32(shift, (float)w[i]);
            else w[i] = shift * w[i] / (1 + (shift - 1) * w[i]);
        }
        return;
    }
    double a = cfg->time_shift_type == SCHEDULER_TIME_SHIFT_EXPONENTIAL ? exp(mu) : mu;
    for (int i = 0; i < n; i++) {
        if (f32) {
            float x = 1.0f / (float)w[i] - 1.0f;
            w[i] = (float)a / ((float)a + x);
        } else {
            w[i] = a / (a + (1 / w[i] - 1));
        }
    }
}

/* Step 3: stretch so the last sigma is shift_terminal. */
static int stretch_to_terminal(double terminal, int f32, int n, double *w)
{
    double last = f32 ? (double)(1.0f - (float)w[n - 1]) : 1 - w[n - 1];
    if (last == 0)
        return error_set("scheduler: shift_terminal %g cannot stretch a schedule that ends at sigma 1 "
                         "(%d step%s)", terminal, n, n == 1 ? "" : "s");
    if (f32) {
        float scale = (float)last / (float)(1 - terminal);
        for (int i = 0; i < n; i++) w[i] = 1.0f - (1.0f - (float)w[i]) / scale;
    } else {
        double scale = last / (1 - terminal);
        for (int i = 0; i < n; i++) w[i] = 1 - (1 - w[i]) / scale;
    }
    return 0;
}

/* Step 4: respace between w[0] and w[n-1] (float64 results). */
static int respace(scheduler_spacing spacing, int n, double *w)
{
    double hi = w[0], lo = w[n - 1];
    if (spacing == SCHEDULER_SPACING_KARRAS) {
        const double rho = 7.0;
        double min_inv_rho = pow(lo, 1 / rho), max_inv_rho = pow(hi, 1 / rho);
        linspace(0, 1, n, w);
        for (int i = 0; i < n; i++) w[i] = pow(max_inv_rho + w[i] * (min_inv_rho - max_inv_rho), rho);
    } else if (spacing == SCHEDULER_SPACING_EXPONENTIAL) {
        if (!(lo > 0 && hi > 0))
            return error_set("scheduler: exponential sigmas need sigmas above 0, got %g .. %g", hi, lo);
        linspace(log(hi), log(lo), n, w);
        for (int i = 0; i < n; i++) w[i] = exp(w[i]);
    }
    return 0;
}

/* Steps 1-4 into w[n]. */
static int build_sigmas(const scheduler_config *cfg, double mu, const double *custom, int n, double *w)
{
    int f32 = custom != NULL;
    if (custom)
        for (int i = 0; i < n; i++) w[i] = (float)custom[i];
    else
        default_sigmas(cfg, n, w);
    shift_sigmas(cfg, mu, f32, n, w);
    if (cfg->shift_terminal != 0 && stretch_to_terminal(cfg->shift_terminal, f32, n, w)) return -1;
    return respace(cfg->spacing, n, w);
}

/* UniPC's flow sigmas (s[0..n], float32 values) and integer timesteps (t[0..n-1]). */
static int unipc_schedule(const scheduler_config *cfg, int n, double *s, double *t)
{
    double T = (double)cfg->num_train_timesteps, shift = cfg->unipc.flow_shift;
    linspace(1.0, 1.0 / T, n + 1, s); /* the last one is dropped */
    for (int i = 0; i < n; i++) s[i] = shift * s[i] / (1 + (shift - 1) * s[i]);
    if (cfg->shift_terminal != 0 && stretch_to_terminal(cfg->shift_terminal, 0, n, s)) return -1;
    if (fabs(s[0] - 1) < 1e-6) s[0] -= 1e-6; /* keeps log(alpha) finite at the first step */
    for (int i = 0; i < n; i++) {
        if (!(s[i] > 0 && s[i] < 1)) return error_set("scheduler: UniPC sigma %d of %d is %g, outside (0, 1)", i, n, s[i]);
        t[i] = (double)(int64_t)(s[i] * T);
        s[i] = (float)s[i];
        /* A step that does not lower sigma has h <= 0, which UniPC's update cannot take. */
        if (i > 0 && !(s[i] < s[i - 1]))
            return error_set("scheduler: UniPC sigmas %d and %d of %d do not decrease in float32 (%.9g, %.9g): "
                             "flow_shift %g leaves no room between them",
                             i - 1, i, n, s[i - 1], s[i], cfg->unipc.flow_shift);
    }
    s[n] = cfg->unipc.final_sigma_min ? s[n - 1] : 0.0;
    return 0;
}

static int check_request(const scheduler_config *cfg, int steps, double mu, const double *custom, int custom_count)
{
    if (steps < 1 || steps > SCHEDULER_MAX_STEPS)
        return error_set("scheduler: num_inference_steps %d is outside [1, %d]", steps, SCHEDULER_MAX_STEPS);
    if (cfg->use_dynamic_shifting && !isfinite(mu))
        return error_set("scheduler: use_dynamic_shifting needs a finite mu, got %g", mu);
    if (!custom) return 0;
    if (custom_count != steps)
        return error_set("scheduler: %d custom sigmas for %d inference steps; give one sigma per step", custom_count,
                         steps);
    for (int i = 0; i < steps; i++)
        if (!(custom[i] >= 0 && custom[i] <= 1))
            return error_set("scheduler: custom sigma %d is %g; sigmas must be in [0, 1]", i, custom[i]);
    return 0;
}

/* Euler's (and LCM's) schedule: steps 1-4 (build_sigmas), then 5-6: float32,
 * timesteps = sigmas * T, inversion, terminal sigma. */
static int euler_schedule(const scheduler_config *cfg, double mu, const double *custom, int n, double *sigmas,
                          double *timesteps)
{
    if (build_sigmas(cfg, mu, custom, n, sigmas)) return -1;
    float T = (float)cfg->num_train_timesteps;
    for (int i = 0; i < n; i++) {
        float sigma = (float)sigmas[i];
        if (cfg->invert_sigmas) sigma = 1.0f - sigma;
        if (!isfinite(sigma)) return error_set("scheduler: sigma %d of %d is not finite (mu %g)", i, n, mu);
        sigmas[i] = sigma;
        timesteps[i] = sigma * T;
    }
    sigmas[n] = cfg->invert_sigmas ? 1.0 : 0.0;
    return 0;
}

int scheduler_set_timesteps_with_mu(scheduler *s, const scheduler_config *cfg, int steps, double mu,
                                    const double *custom_sigmas, int custom_count)
{
    if (check_request(cfg, steps, mu, custom_sigmas, custom_count)) return -1;
    int unipc = cfg->kind == SCHEDULER_UNIPC;
    if (unipc && custom_sigmas)
        return error_set("scheduler: custom sigmas are not supported with UniPCMultistepScheduler");
    double *sigmas = malloc((size_t)(steps + 1) * sizeof *sigmas);
    double *timesteps = malloc((size_t)steps * sizeof *timesteps);
    if (!sigmas || !timesteps) {
        free(sigmas), free(timesteps);
        return error_set("scheduler: out of memory for %d steps", steps);
    }
    if (unipc ? unipc_schedule(cfg, steps, sigmas, timesteps)
              : euler_schedule(cfg, mu, custom_sigmas, steps, sigmas, timesteps)) {
        free(sigmas), free(timesteps);
        return -1;
    }
    free(s->sigmas), free(s->timesteps);
    s->cfg = *cfg;
    s->steps = steps;
    s->mu = !unipc && cfg->use_dynamic_shifting ? mu : NAN;
    s->sigmas = sigmas;
    s->timesteps = timesteps;
    return 0;
}

int scheduler_set_timesteps(scheduler *s, const scheduler_config *cfg, int steps, int64_t image_seq_len,
                            const double *custom_sigmas)
{
    double mu = cfg->use_dynamic_shifting ? scheduler_mu(cfg, image_seq_len) : NAN;
    return scheduler_set_timesteps_with_mu(s, cfg, steps, mu, custom_sigmas, custom_sigmas ? steps : 0);
}

void scheduler_free(scheduler *s)
{
    free(s->sigmas);
    free(s->timesteps);
    s->sigmas = s->timesteps = NULL;
    s->steps = 0;
}

double scheduler_timestep(const scheduler *s, int i) { return s->timesteps[i]; }

double scheduler_sigma(const scheduler *s, int i) { return s->sigmas[i]; }

/* ---- sampling ------------------------------------------------------------ */

int scheduler_history_init(scheduler_history *h, const scheduler *s, int64_t n, uint64_t seed)
{
    memset(h, 0, sizeof *h);
    h->n = n;
    h->seed = seed;
    if (s->cfg.kind == SCHEDULER_FLOW_MATCH_LCM) {
        h->buffer = h->noise = malloc((size_t)n * sizeof(float));
        return h->noise ? 0 : error_set("scheduler: out of memory for a step's noise");
    }
    if (s->cfg.kind != SCHEDULER_UNIPC) return 0;
    int order = s->cfg.unipc.solver_order; /* outputs, the spare, the last sample */
    h->buffer = malloc((size_t)(order + 2) * (size_t)n * sizeof(float));
    if (!h->buffer) return error_set("scheduler: out of memory for UniPC's history of %d steps", order);
    for (int k = 0; k < order; k++) h->outputs[k] = h->buffer + (size_t)k * (size_t)n;
    h->spare = h->buffer + (size_t)order * (size_t)n;
    h->last_sample = h->buffer + (size_t)(order + 1) * (size_t)n;
    return 0;
}

void scheduler_history_free(scheduler_history *h)
{
    free(h->buffer);
    memset(h, 0, sizeof *h);
}

void scheduler_step(const scheduler *s, scheduler_history *h, int i, const float *velocity, float *latents, int64_t n)
{
    if (s->cfg.kind == SCHEDULER_UNIPC) {
        scheduler_unipc_step(s, h, i, velocity, latents, n);
        return;
    }
    if (s->cfg.kind == SCHEDULER_FLOW_MATCH_LCM) {
        philox_fill_normal(h->seed, SCHEDULER_NOISE_STREAM + (uint64_t)i, 0, n, h->noise);
        scheduler_lcm_step(s, i, velocity, h->noise, latents, n);
        return;
    }
    float dt = (float)s->sigmas[i + 1] - (float)s->sigmas[i];
#pragma omp parallel for if (n > HOST_PARALLEL_MIN_VALUES) /* between forwards, with the device idle */
    for (int64_t j = 0; j < n; j++) latents[j] = latents[j] + dt * velocity[j];
}

void scheduler_lcm_step(const scheduler *s, int i, const float *velocity, const float *noise, float *latents,
                        int64_t n)
{
    float sigma = (float)s->sigmas[i], next = (float)s->sigmas[i + 1], keep = 1.0f - next;
#pragma omp parallel for if (n > HOST_PARALLEL_MIN_VALUES)
    for (int64_t j = 0; j < n; j++) {
        float x0 = latents[j] - sigma * velocity[j];
        latents[j] = keep * x0 + next * noise[j];
    }
}

int scheduler_start_index(const scheduler *s, double strength, int *start)
{
    if (!(strength > 0 && strength <= 1)) return error_set("img2img strength %g is outside (0, 1]", strength);
    double init = fmin(s->steps * strength, (double)s->steps);
    int first = (int)fmax(s->steps - init, 0.0);
    if (first >= s->steps)
        return error_set("img2img strength %g leaves none of the %d inference steps to run", strength, s->steps);
    *start = first;
    return 0;
}

void scheduler_scale_noise(const scheduler *s, int i, const float *sample, const float *noise, float *out, int64_t n)
{
    float sigma = (float)s->sigmas[i], keep = 1.0f - sigma;
    for (int64_t j = 0; j < n; j++) out[j] = sigma * noise[j] + keep * sample[j];
}
