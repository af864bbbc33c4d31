/* The flow-matching Euler scheduler: diffusers' FlowMatchEulerDiscreteScheduler
 * (schedulers/scheduling_flow_match_euler_discrete.py, diffusers 0.42), as the
 * HiDream, FLUX, SD3 and LTX pipelines drive it.
 *
 * A sample at noise level sigma in [0, 1] is x = sigma * noise + (1 - sigma) * x0.
 * set_timesteps(N) builds N sigmas, then a terminal 0, from T = num_train_timesteps:
 *
 *   default   s = linspace(T * sigma_max, T * sigma_min, N) / T               float64
 *             (sigma_max, sigma_min: ends of the training schedule; without dynamic
 *             shifting those were already shifted once: sigma_min = shift(1 / T))
 *   custom    s = float32(sigmas)  (FLUX passes linspace(1, 1/N, N))           float32
 *   shift     static:              s = shift * s / (1 + (shift - 1) * s)
 *             dynamic exponential: s = e^mu / (e^mu + (1 / s - 1))
 *             dynamic linear:      s = mu / (mu + (1 / s - 1))
 *   terminal  s = 1 - (1 - s) / ((1 - s[N-1]) / (1 - shift_terminal))   (shift_terminal)
 *   spacing   karras: (hi^(1/7) + r * (lo^(1/7) - hi^(1/7)))^7, r = linspace(0, 1, N)
 *             exponential: exp(linspace(log hi, log lo, N)); hi = s[0], lo = s[N-1]
 *   then      s = float32(s); timesteps = s * T (float32)
 *             invert_sigmas: s = 1 - s, timesteps = s * T, terminal 1 instead of 0
 *
 * Each line is computed in the precision diffusers uses (float64 for the default
 * schedule, float32 for custom sigmas: NumPy 2 keeps a float32 array float32 when
 * combined with Python scalars), so sigmas and timesteps are the float32 values
 * diffusers holds, bit for bit.
 *
 * mu for dynamic shifting is a line through (base_seq_len, base_shift) and
 * (max_seq_len, max_shift) at image_seq_len (calculate_shift of the pipelines).
 * FLUX/SD3 pass the latent token count with the config's line; HiDream passes
 * calculate_shift(transformer.max_seq) with the default line, but its checkpoints
 * turn dynamic shifting off, so mu is ignored there.
 *
 * Euler step i (diffusers' step, sample upcast to float32):
 *   x <- x + (sigma[i+1] - sigma[i]) * v       v = the velocity (negated DiT output)
 *
 * FlowMatchLCMScheduler (HiDream-I1-Dev's and -Fast's) has Euler's schedule
 * (the same keys and set_timesteps) and a stochastic step:
 *   x0 = x - sigma_i * v;  x <- (1 - sigma_{i+1}) * x0 + sigma_{i+1} * noise
 * with fresh standard normal noise each step (SCHEDULER_NOISE_STREAM).
 *
 * UniPCMultistepScheduler (HiDream-I1-Full's scheduler) is supported for
 * flow-matching models: its schedule is here (flow sigmas, set_timesteps of
 * schedulers/scheduling_unipc_multistep.py, diffusers 0.42), its multistep
 * predictor-corrector in scheduler_unipc.h:
 *   s = linspace(1, 1 / T, N + 1)[:N]; s = flow_shift * s / (1 + (flow_shift - 1) * s)   float64
 *   shift_terminal as above; s[0] -= 1e-6 where |s[0] - 1| < 1e-6
 *   timesteps = int64(s * T) (truncated); terminal sigma 0, or s[N-1] (final_sigmas_type
 *   "sigma_min"); sigmas float32
 */
#ifndef MOEDIT_PIPELINES_SCHEDULER_H
#define MOEDIT_PIPELINES_SCHEDULER_H

#include <stdint.h>

#define SCHEDULER_MAX_STEPS 10000

#define SCHEDULER_MAX_ORDER 3     /* UniPC's solver_order */
#define SCHEDULER_MAX_DISABLED 16 /* UniPC's disable_corrector entries */

typedef enum { SCHEDULER_FLOW_MATCH_EULER = 0, SCHEDULER_UNIPC, SCHEDULER_FLOW_MATCH_LCM } scheduler_kind;

/* FlowMatchLCMScheduler's step i draws its noise from the Philox stream
 * SCHEDULER_NOISE_STREAM + i of the run's seed (the initial noise is stream
 * 0), element by element, so every rank and layout draws the same. */
#define SCHEDULER_NOISE_STREAM ((uint64_t)1 << 32)
typedef enum { SCHEDULER_TIME_SHIFT_EXPONENTIAL = 0, SCHEDULER_TIME_SHIFT_LINEAR } scheduler_time_shift;
typedef enum { SCHEDULER_SPACING_PLAIN = 0, SCHEDULER_SPACING_KARRAS, SCHEDULER_SPACING_EXPONENTIAL } scheduler_spacing;

/* UniPCMultistepScheduler's keys for flow matching; diffusers' defaults in comments. */
typedef struct scheduler_unipc_config {
    int solver_order;      /* 2: history steps of the predictor (1..SCHEDULER_MAX_ORDER) */
    double flow_shift;     /* 1.0 */
    int lower_order_final; /* true: order 1 at the last step (and 2 at the one before, for order 3) */
    int bh1;               /* solver_type "bh1" (B(h) = h); else "bh2" (B(h) = e^h - 1) */
    int final_sigma_min;   /* final_sigmas_type "sigma_min"; else "zero" */
    int disabled_count;    /* disable_corrector: steps whose following step skips the corrector */
    int64_t disable_corrector[SCHEDULER_MAX_DISABLED];
} scheduler_unipc_config;

/* scheduler_config.json; diffusers' defaults in comments. */
typedef struct scheduler_config {
    scheduler_kind kind;                           /* _class_name */
    int64_t num_train_timesteps;                   /* T: 1000 */
    double shift;                                  /* 1.0; used when not dynamic */
    int use_dynamic_shifting;                      /* false: shift by mu instead of shift */
    double base_shift, max_shift;                  /* 0.5, 1.15: the mu line */
    int64_t base_image_seq_len, max_image_seq_len; /* 256, 4096 */
    scheduler_time_shift time_shift_type;          /* "exponential" */
    int invert_sigmas;                             /* false (Mochi) */
    double shift_terminal;                         /* null: 0 = off; else in (0, 1) */
    scheduler_spacing spacing;                     /* use_karras_sigmas / use_exponential_sigmas */
    scheduler_unipc_config unipc;                  /* kind SCHEDULER_UNIPC */
} scheduler_config;

/* A schedule of `steps` steps. Zero-initialise before the first
 * scheduler_set_timesteps; set it again at will; scheduler_free at the end. */
typedef struct scheduler {
    scheduler_config cfg;
    int steps;
    double mu;         /* the mu used (dynamic shifting), else NAN */
    double *sigmas;    /* [steps + 1] float32 values; last 0 (1 when inverted) */
    double *timesteps; /* [steps] float32 values in [0, T]: what the transformer gets */
} scheduler;

/* diffusers' defaults (the values above). */
void scheduler_config_default(scheduler_config *cfg);

/* Read scheduler_config.json; absent and null keys take the defaults. Errors
 * name the file and key: a _class_name other than
 * FlowMatchEulerDiscreteScheduler, FlowMatchLCMScheduler (without
 * scale_factors) or UniPCMultistepScheduler,
 * stochastic_sampling or use_beta_sigmas (not supported), more than one of
 * use_karras/exponential/beta_sigmas, an unknown time_shift_type, T < 1,
 * shift <= 0, shift_terminal outside [0, 1), a dynamic config with
 * max_image_seq_len == base_image_seq_len; for UniPC, scheduler_unipc_read's. */
int scheduler_load(scheduler_config *cfg, const char *path);

/* The pipelines' calculate_shift:
 *   m = (max_shift - base_shift) / (max_seq_len - base_seq_len)
 *   mu = image_seq_len * m + (base_shift - m * base_seq_len) */
double scheduler_calculate_shift(int64_t image_seq_len, int64_t base_seq_len, int64_t max_seq_len, double base_shift,
                                 double max_shift);

/* calculate_shift on the config's line (base/max_image_seq_len, base/max_shift),
 * as the FLUX and SD3 pipelines call it. */
double scheduler_mu(const scheduler_config *cfg, int64_t image_seq_len);

/* set_timesteps(steps, mu=scheduler_mu(cfg, image_seq_len), sigmas=custom_sigmas).
 * custom_sigmas: NULL for the default schedule, else `steps` values in [0, 1].
 * image_seq_len is used only when the config shifts dynamically. Fails (and
 * leaves s as it was) for steps outside [1, SCHEDULER_MAX_STEPS] or a custom
 * sigma outside [0, 1]. */
int scheduler_set_timesteps(scheduler *s, const scheduler_config *cfg, int steps, int64_t image_seq_len,
                            const double *custom_sigmas);

/* The general form, diffusers' set_timesteps(steps, sigmas=..., mu=...): mu is
 * given directly (NAN when the pipeline passes none: an error if the config
 * shifts dynamically, ignored otherwise), and custom_count must equal steps
 * when custom_sigmas is not NULL. */
int scheduler_set_timesteps_with_mu(scheduler *s, const scheduler_config *cfg, int steps, double mu,
                                    const double *custom_sigmas, int custom_count);

void scheduler_free(scheduler *s);

/* The timestep of step i (0 <= i < steps) for the transformer, in [0, T]
 * (UniPC: an integer, as diffusers holds it). */
double scheduler_timestep(const scheduler *s, int i);

/* sigma[i], 0 <= i <= steps. */
double scheduler_sigma(const scheduler *s, int i);

/* What a multistep scheduler keeps between the steps of one denoising run
 * (UniPC: the last x0 predictions and the sample before the last predictor);
 * Euler keeps nothing. */
typedef struct scheduler_history {
    int64_t n;
    float *outputs[SCHEDULER_MAX_ORDER]; /* x0 predictions of consecutive steps, outputs[count - 1] the latest */
    int count;
    float *spare;       /* where the next step's prediction goes */
    float *last_sample; /* the sample before the last predictor */
    int has_last;       /* a predictor ran */
    float *buffer;      /* the storage of all of them */
    int lower_order_nums, this_order;
    uint64_t seed; /* LCM: the noise's seed */
    float *noise;  /* LCM: one step's noise */
} scheduler_history;

/* A fresh history for runs of n latents (allocates for UniPC and LCM only);
 * one per denoising run, since it carries state from step to step. seed: the
 * run's (LCM's noise). */
int scheduler_history_init(scheduler_history *h, const scheduler *s, int64_t n, uint64_t seed);
void scheduler_history_free(scheduler_history *h);

/* Step i (0 <= i < steps) on n latents in place; steps of one run in order.
 * Euler: in float32 exactly as diffusers, latents[j] += float(sigma[i+1] -
 * sigma[i]) * velocity[j] (h unused, may be NULL). UniPC: scheduler_unipc_step
 * with h. LCM: scheduler_lcm_step with the Philox noise of h's seed. */
void scheduler_step(const scheduler *s, scheduler_history *h, int i, const float *velocity, float *latents, int64_t n);

/* LCM's step i with the given noise, float32 in diffusers' order:
 *   x0 = x - sigma_i * v;  x = (1 - sigma_{i+1}) * x0 + sigma_{i+1} * noise */
void scheduler_lcm_step(const scheduler *s, int i, const float *velocity, const float *noise, float *latents,
                        int64_t n);

/* img2img (SDEdit): the first step to run for strength in (0, 1], as the FLUX
 * img2img pipeline's get_timesteps:
 *   start = int(max(steps - min(steps * strength, steps), 0))
 * Steps start..steps-1 run. Fails naming the strength if it is outside (0, 1]
 * or leaves no step to run. */
int scheduler_start_index(const scheduler *s, double strength, int *start);

/* diffusers' scale_noise at step i (the img2img start): out = sigma[i] * noise
 * + (1 - sigma[i]) * sample, float32; out may alias sample or noise. */
void scheduler_scale_noise(const scheduler *s, int i, const float *sample, const float *noise, float *out,
                           int64_t n);

#endif
