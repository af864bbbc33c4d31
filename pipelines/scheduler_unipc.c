/* UniPCMultistepScheduler for flow matching; see scheduler_unipc.h for the
 * math. As in scheduler.c, no multiply may fuse with an add: PyTorch rounds
 * each product before the sum. */
#include "pipelines/scheduler_unipc.h"

#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/host_parallel.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* ---- scheduler_config.json ---------------------------------------------- */

static int read_names(scheduler_unipc_config *u, const config *c)
{
    const char *path = config_path(c), *prediction, *solver, *final_sigmas;
    if (config_get_string_or(c, "prediction_type", "epsilon", &prediction) ||
        config_get_string_or(c, "solver_type", "bh2", &solver) ||
        config_get_string_or(c, "final_sigmas_type", "zero", &final_sigmas))
        return -1;
    if (strcmp(prediction, "flow_prediction") != 0)
        return error_set("%s: key \"prediction_type\" is \"%s\"; moedit runs UniPCMultistepScheduler for flow-matching "
                         "models only (\"flow_prediction\" with \"use_flow_sigmas\": true)",
                         path, prediction);
    /* diffusers maps the older names to bh2. */
    if (!strcmp(solver, "bh1")) u->bh1 = 1;
    else if (!strcmp(solver, "bh2") || !strcmp(solver, "midpoint") || !strcmp(solver, "heun") ||
             !strcmp(solver, "logrho"))
        u->bh1 = 0;
    else return error_set("%s: key \"solver_type\" must be \"bh1\" or \"bh2\", got \"%s\"", path, solver);
    if (!strcmp(final_sigmas, "zero")) u->final_sigma_min = 0;
    else if (!strcmp(final_sigmas, "sigma_min")) u->final_sigma_min = 1;
    else
        return error_set("%s: key \"final_sigmas_type\" must be \"zero\" or \"sigma_min\", got \"%s\"", path,
                         final_sigmas);
    return 0;
}

/* Keys whose other values moedit does not run: each must hold `want`. */
static int require_flags(const config *c)
{
    static const struct {
        const char *key;
        int fallback, want;
        const char *why;
    } flags[] = {
        {"use_flow_sigmas", 0, 1, "moedit runs UniPC on flow sigmas only"},
        {"predict_x0", 1, 1, "flow prediction needs the x0 form"},
        {"thresholding", 0, 0, "thresholding is not supported"},
        {"use_karras_sigmas", 0, 0, "karras sigmas are not supported with UniPC"},
        {"use_exponential_sigmas", 0, 0, "exponential sigmas are not supported with UniPC"},
        {"use_beta_sigmas", 0, 0, "beta sigmas are not supported"},
        {"use_dynamic_shifting", 0, 0, "HiDream's pipeline gives UniPC no mu to shift by"},
    };
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        int value;
        if (config_get_bool_or(c, flags[i].key, flags[i].fallback, &value)) return -1;
        if (value != flags[i].want)
            return error_set("%s: key \"%s\" is %s: %s", config_path(c), flags[i].key, value ? "true" : "false",
                             flags[i].why);
    }
    return 0;
}

int scheduler_unipc_read(scheduler_config *cfg, const config *c)
{
    scheduler_unipc_config *u = &cfg->unipc;
    const char *path = config_path(c);
    int64_t order = 2;
    *u = (scheduler_unipc_config){.solver_order = 2, .flow_shift = 1.0, .lower_order_final = 1};
    if (read_names(u, c) || require_flags(c) || config_get_int_or(c, "solver_order", 2, &order) ||
        config_get_float_or(c, "flow_shift", 1.0, &u->flow_shift) ||
        config_get_bool_or(c, "lower_order_final", 1, &u->lower_order_final))
        return -1;
    if (order < 1 || order > SCHEDULER_MAX_ORDER)
        return error_set("%s: key \"solver_order\" must be 1 to %d, got %lld", path, SCHEDULER_MAX_ORDER,
                         (long long)order);
    u->solver_order = (int)order;
    if (!(u->flow_shift > 0) || !isfinite(u->flow_shift))
        return error_set("%s: key \"flow_shift\" must be a positive number, got %g", path, u->flow_shift);
    if (config_has(c, "disable_corrector") &&
        config_get_int_array(c, "disable_corrector", u->disable_corrector, SCHEDULER_MAX_DISABLED,
                             &u->disabled_count))
        return -1;
    if (u->bh1 && !u->final_sigma_min)
        return error_set("%s: key \"solver_type\" is \"bh1\" with \"final_sigmas_type\" \"zero\": the last step "
                         "would multiply infinity by zero (diffusers returns NaN); use \"bh2\" or \"sigma_min\"",
                         path);
    if (!u->lower_order_final && !u->final_sigma_min)
        return error_set("%s: key \"lower_order_final\" is false with \"final_sigmas_type\" \"zero\": the last step "
                         "would divide by zero (diffusers returns infinities); set one of them",
                         path);
    return 0;
}

/* ---- one B(h) update ---------------------------------------------------- */

/* The float32 scalars of an update from sigma[from] to sigma[to] with `older`
 * previous outputs (diffusers' multistep_uni_p/c_bh_update). */
typedef struct update_terms {
    float ratio;                     /* sigma_t / sigma_s0 */
    float m0_scale;                  /* alpha_t * h_phi_1 */
    float sum_scale;                 /* alpha_t * B(h) */
    float r[SCHEDULER_MAX_ORDER];    /* r_k of the older outputs, then 1 */
    float rho[SCHEDULER_MAX_ORDER];  /* weights of the D_k (and, corrector, of D_t last) */
} update_terms;

static float lambda_of(float sigma) { return logf(1.0f - sigma) - logf(sigma); }

/* a x = b for n <= SCHEDULER_MAX_ORDER, partial pivoting (torch.linalg.solve in float32). */
static void solve(int n, float a[SCHEDULER_MAX_ORDER][SCHEDULER_MAX_ORDER], float *b, float *x)
{
    for (int col = 0; col < n; col++) {
        int pivot = col;
        for (int row = col + 1; row < n; row++)
            if (fabsf(a[row][col]) > fabsf(a[pivot][col])) pivot = row;
        for (int k = 0; k < n; k++) {
            float t = a[col][k];
            a[col][k] = a[pivot][k];
            a[pivot][k] = t;
        }
        float t = b[col];
        b[col] = b[pivot];
        b[pivot] = t;
        for (int row = col + 1; row < n; row++) {
            float f = a[row][col] / a[col][col];
            for (int k = col; k < n; k++) a[row][k] = a[row][k] - f * a[col][k];
            b[row] = b[row] - f * b[col];
        }
    }
    for (int row = n - 1; row >= 0; row--) {
        float sum = b[row];
        for (int k = row + 1; k < n; k++) sum = sum - a[row][k] * x[k];
        x[row] = sum / a[row][row];
    }
}

static void update_scalars(const scheduler *s, int from, int to, int order, int corrector, update_terms *u)
{
    int bh1 = s->cfg.unipc.bh1, older = order - 1;
    float sigma_t = (float)s->sigmas[to], sigma_s0 = (float)s->sigmas[from];
    float alpha_t = 1.0f - sigma_t, lambda_s0 = lambda_of(sigma_s0);
    float h = lambda_of(sigma_t) - lambda_s0, hh = -h;
    for (int k = 1; k <= older; k++) u->r[k - 1] = (lambda_of((float)s->sigmas[from - k]) - lambda_s0) / h;
    u->r[older] = 1.0f;
    float h_phi_1 = expm1f(hh), h_phi_k = h_phi_1 / hh - 1.0f, b_h = bh1 ? hh : expm1f(hh);
    float rows[SCHEDULER_MAX_ORDER][SCHEDULER_MAX_ORDER], b[SCHEDULER_MAX_ORDER];
    long factorial = 1;
    for (int i = 1; i <= order; i++) {
        for (int c = 0; c < order; c++) rows[i - 1][c] = powf(u->r[c], (float)(i - 1));
        b[i - 1] = h_phi_k * (float)factorial / b_h;
        factorial *= i + 1;
        h_phi_k = h_phi_k / hh - (float)(1.0 / (double)factorial);
    }
    if (corrector) {
        if (order == 1) u->rho[0] = 0.5f;
        else solve(order, rows, b, u->rho);
    } else if (older > 0) {
        if (order == 2) u->rho[0] = 0.5f;
        else solve(older, rows, b, u->rho);
    }
    u->ratio = sigma_t / sigma_s0;
    u->m0_scale = alpha_t * h_phi_1;
    u->sum_scale = alpha_t * b_h;
}

/* out = ratio * x - m0_scale * m0 - sum_scale * (sum_k rho_k (m_k - m0) / r_k [+ rho_t (mt - m0)]),
 * element-wise in diffusers' order; `older` = outputs before m0 in h, mt NULL
 * for the predictor. out may alias x. */
static void apply_update(const update_terms *u, const scheduler_history *h, int older, const float *x,
                         const float *m0, const float *mt, float *out, int64_t n)
{
    const float *m[SCHEDULER_MAX_ORDER];
    for (int k = 1; k <= older; k++) m[k - 1] = h->outputs[h->count - 1 - k];
    /* With no term, sum stays 0 and the subtraction leaves base as it is (sum_scale is finite: the
     * configs where it is not are refused). */
#pragma omp parallel for if (n > HOST_PARALLEL_MIN_VALUES)
    for (int64_t j = 0; j < n; j++) {
        float sum = 0.0f;
        for (int k = 0; k < older; k++) sum = sum + u->rho[k] * ((m[k][j] - m0[j]) / u->r[k]);
        if (mt) sum = sum + u->rho[older] * (mt[j] - m0[j]);
        out[j] = (u->ratio * x[j] - u->m0_scale * m0[j]) - u->sum_scale * sum;
    }
}

/* ---- the step ----------------------------------------------------------- */

static int corrector_disabled(const scheduler_unipc_config *u, int step)
{
    for (int k = 0; k < u->disabled_count; k++)
        if (u->disable_corrector[k] == step) return 1;
    return 0;
}

void scheduler_unipc_step(const scheduler *s, scheduler_history *h, int i, const float *velocity, float *latents,
                          int64_t n)
{
    const scheduler_unipc_config *u = &s->cfg.unipc;
    float sigma = (float)s->sigmas[i], *m = h->spare;
#pragma omp parallel for if (n > HOST_PARALLEL_MIN_VALUES)
    for (int64_t j = 0; j < n; j++) m[j] = latents[j] - sigma * velocity[j];

    update_terms terms;
    if (h->has_last && !corrector_disabled(u, i - 1)) {
        /* UniC: the sample of step i again, from the last predictor's input. */
        update_scalars(s, i - 1, i, h->this_order, 1, &terms);
        apply_update(&terms, h, h->this_order - 1, h->last_sample, h->outputs[h->count - 1], m, latents, n);
    }

    /* The history takes m. outputs[count..] hold unused storage; when full,
     * the oldest output's storage is the next spare. */
    if (h->count == u->solver_order) {
        float *oldest = h->outputs[0];
        memmove(h->outputs, h->outputs + 1, (size_t)(h->count - 1) * sizeof h->outputs[0]);
        h->outputs[h->count - 1] = m;
        h->spare = oldest;
    } else {
        float *unused = h->outputs[h->count];
        h->outputs[h->count++] = m;
        h->spare = unused;
    }

    int order = u->solver_order;
    if (u->lower_order_final && s->steps - i < order) order = s->steps - i;
    h->this_order = order < h->lower_order_nums + 1 ? order : h->lower_order_nums + 1;
    memcpy(h->last_sample, latents, (size_t)n * sizeof(float));
    h->has_last = 1;

    /* UniP: step i to sigma[i + 1]. */
    update_scalars(s, i, i + 1, h->this_order, 0, &terms);
    apply_update(&terms, h, h->this_order - 1, latents, m, NULL, latents, n);
    if (h->lower_order_nums < u->solver_order) h->lower_order_nums++;
}
