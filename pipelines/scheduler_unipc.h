/* UniPCMultistepScheduler for flow matching (diffusers 0.42,
 * schedulers/scheduling_unipc_multistep.py), as HiDream-I1-Full ships it:
 * prediction_type "flow_prediction", use_flow_sigmas, predict_x0, solver_order
 * 2, bh2. Its schedule is scheduler.c's; this is its config and its step.
 *
 * With alpha = 1 - sigma and lambda(sigma) = log(alpha) - log(sigma), step i
 * takes the velocity v at sample x (sigma_i) to sigma_{i+1}:
 *   m = x - sigma_i * v                              the x0 prediction
 *   corrector (when a predictor ran before, and step i - 1 is not in
 *   disable_corrector), with the previous step's order p:
 *     x = UniC_p(m; the sample before the last predictor, the history)
 *   the history takes m; p = min(solver_order, steps - i if lower_order_final,
 *   1 + the steps run so far)
 *   predictor: x_next = UniP_p(x; the history)
 * Both updates, from s0 to t with h = lambda_t - lambda_s0 and, for the k-th
 * older output m_k at step s_k, r_k = (lambda_{s_k} - lambda_s0) / h and
 * D_k = (m_k - m0) / r_k:
 *   x_t = sigma_t / sigma_s0 * x - alpha_t * (e^-h - 1) * m0 - alpha_t * B(h) * sum_k rho_k D_k
 * with B(h) = e^-h - 1 (bh2) or -h (bh1), and rho the solution of
 * R rho = b, R[r][c] = r_c^r (r_last = 1), b the phi-function terms over B(h)
 * (the predictor of order 2 takes rho = 1/2 without solving; the corrector
 * adds its own D_t = m - m0 as the last term; of order 1 it takes rho = 1/2).
 * The scalars are float32 as diffusers holds them (0-d float32 tensors), the
 * element-wise terms float32 in diffusers' order. At the terminal sigma 0,
 * lambda is infinite and x_next = m (order 1).
 *
 * Steps go by index. diffusers' step finds its first index by the timestep's
 * value, so where the first two integer timesteps coincide (flow_shift 3 with
 * about 333 steps or more: 999, 999, ...) it starts at the second and fails an
 * assertion at the end (diffusers 0.42, 340 and 400 steps tried); moedit runs
 * every step. */
#ifndef MOEDIT_PIPELINES_SCHEDULER_UNIPC_H
#define MOEDIT_PIPELINES_SCHEDULER_UNIPC_H

#include "core/config.h"
#include "pipelines/scheduler.h"

/* The UniPC keys of scheduler_config.json into cfg->unipc (and the shared
 * num_train_timesteps and shift_terminal, already read). Refused, naming the
 * key: a prediction_type other than "flow_prediction" or use_flow_sigmas false
 * (moedit runs flow-matching models), predict_x0 false, thresholding,
 * karras/exponential/beta sigmas, dynamic shifting (HiDream's pipeline passes
 * UniPC no mu), solver_order outside 1..SCHEDULER_MAX_ORDER, an unknown
 * solver_type or final_sigmas_type, flow_shift <= 0, more than
 * SCHEDULER_MAX_DISABLED disable_corrector entries, and, with
 * final_sigmas_type "zero", lower_order_final false or solver_type "bh1"
 * (diffusers' last step gives infinities or NaN there). */
int scheduler_unipc_read(scheduler_config *cfg, const config *c);

/* Step i with h (see above). */
void scheduler_unipc_step(const scheduler *s, scheduler_history *h, int i, const float *velocity, float *latents,
                          int64_t n);

#endif
