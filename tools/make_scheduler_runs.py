#!/usr/bin/env python3
"""Reference fixtures for moedit's multistep and stochastic flow-matching schedulers
(pipelines/scheduler_unipc.c, scheduler_lcm_step in pipelines/scheduler.c): whole runs.

diffusers' UniPCMultistepScheduler for flow matching (prediction_type "flow_prediction",
use_flow_sigmas), as HiDream-I1-Full ships it (flow_shift 3, solver_order 2, bh2) and in
variants that exercise the other branches; and FlowMatchLCMScheduler as HiDream-I1-Dev and
-Fast ship it (shift 6 and 3). Each at 1, 2, 5 and 30 inference steps:

    scheduler.set_timesteps(steps)       (HiDreamImagePipeline passes UniPC nothing else;
                                          LCM gets mu, which its static shift ignores)
    for i, t in enumerate(timesteps): sample = scheduler.step(velocity[i], t, sample).prev_sample

with a random velocity per step in place of a model (the schedulers are linear in it), and,
for HiDream's configs at 30 steps, the same from step 12 on (set_begin_index(12)), as an
image edit starts. LCM draws noise in each step; the fixture records it.

What it produces, in tests/fixtures/scheduler_runs/:

  fixture.json                  "cases": [{"name", "config", "steps", "start"}], versions, seed
  <config>/scheduler_config.json  diffusers save_config of the scheduler
  io.safetensors                F32; sample [2, 4, 4] (shared), and per case c:
                                  c.sigmas [steps + 1], c.timesteps [steps]
                                  c.velocity [steps - start, 2, 4, 4]
                                  c.noise [steps - start, 2, 4, 4] (LCM: each step's noise)
                                  c.samples [steps - start, 2, 4, 4]: the sample after each step

Rerun: python3 tools/make_scheduler_runs.py   (needs torch, diffusers, safetensors)
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_common as common  # noqa: E402
import diffusers  # noqa: E402
from diffusers import FlowMatchLCMScheduler, UniPCMultistepScheduler  # noqa: E402

FIXTURE = os.path.join(common.FIXTURES, "scheduler_runs")
SEED = 2025
FLOW = dict(prediction_type="flow_prediction", use_flow_sigmas=True)
UNIPC = {
    "hidream_full": dict(flow_shift=3.0),
    "order1": dict(flow_shift=3.0, solver_order=1),
    "order3": dict(flow_shift=2.0, solver_order=3),
    "order3_bh1_sigma_min": dict(flow_shift=2.0, solver_order=3, solver_type="bh1", final_sigmas_type="sigma_min"),
    "sigma_min_all_orders": dict(flow_shift=3.0, final_sigmas_type="sigma_min", lower_order_final=False),
    "corrector_off_0_3": dict(flow_shift=6.0, disable_corrector=[0, 3]),
    "shift_terminal": dict(flow_shift=1.0, shift_terminal=0.1),
}
LCM = {
    "hidream_dev_lcm": dict(shift=6.0),
    "hidream_fast_lcm": dict(shift=3.0),
}
EDIT_START = {"hidream_full": 12, "hidream_dev_lcm": 12}
STEPS = (1, 2, 5, 30)


def run(scheduler, steps, start, sample, generator):
    """Velocities, each step's noise (LCM; None for UniPC) and the samples after each step."""
    lcm = isinstance(scheduler, FlowMatchLCMScheduler)
    if lcm:
        scheduler.set_timesteps(steps, mu=1.0)  # HiDream passes mu; the static shift ignores it
    else:
        scheduler.set_timesteps(steps)
    if start:
        scheduler.set_begin_index(start)
    velocities, noises, samples = [], [], []
    x = sample.clone()
    for t in scheduler.timesteps[start:]:
        v = torch.randn(sample.shape, generator=generator)
        if lcm:
            state = generator.get_state()  # the step draws its noise next: draw it again to record it
            noises.append(torch.randn(sample.shape, generator=generator))
            generator.set_state(state)
            x = scheduler.step(v, t, x, generator=generator).prev_sample
        else:
            x = scheduler.step(v, t, x).prev_sample
        velocities.append(v)
        samples.append(x.clone())
    return torch.stack(velocities), torch.stack(noises) if lcm else None, torch.stack(samples)


def main():
    common.setup_determinism()
    if os.path.isdir(FIXTURE):
        shutil.rmtree(FIXTURE)
    os.makedirs(FIXTURE)
    generator = torch.Generator().manual_seed(SEED)
    sample = torch.randn((2, 4, 4), generator=generator)
    tensors = {"sample": sample}
    cases = []
    configs = [(name, UniPCMultistepScheduler(**FLOW, **extra)) for name, extra in UNIPC.items()]
    configs += [(name, FlowMatchLCMScheduler(**extra)) for name, extra in LCM.items()]
    for name, scheduler in configs:
        scheduler.save_config(os.path.join(FIXTURE, name))
        # shift_terminal cannot stretch one step (its sigma is 1; diffusers gives NaN, moedit refuses).
        runs = [(steps, 0) for steps in STEPS if steps > 1 or not scheduler.config.get("shift_terminal")]
        runs += [(30, EDIT_START[name])] if name in EDIT_START else []
        for steps, start in runs:
            case = f"{name}.{steps}" + (f".from{start}" if start else "")
            scheduler = type(scheduler).from_config(scheduler.config)
            velocity, noise, samples = run(scheduler, steps, start, sample, generator)
            assert torch.isfinite(samples).all(), case
            tensors[case + ".sigmas"] = scheduler.sigmas.float().contiguous()
            tensors[case + ".timesteps"] = scheduler.timesteps.float().contiguous()
            tensors[case + ".velocity"] = velocity.contiguous()
            if noise is not None:
                tensors[case + ".noise"] = noise.contiguous()
            tensors[case + ".samples"] = samples.contiguous()
            cases.append({"name": case, "config": name, "steps": steps, "start": start})
    save_file(tensors, os.path.join(FIXTURE, "io.safetensors"))
    common.write_info(FIXTURE, {"generator": "tools/make_scheduler_runs.py",
                                "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__},
                                "seed": SEED, "sample_shape": [2, 4, 4], "cases": cases})
    print(f"{common.list_files(FIXTURE, 60)} B in {len(cases)} cases")


if __name__ == "__main__":
    sys.exit(main())
