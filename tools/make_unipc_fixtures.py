#!/usr/bin/env python3
"""Reference fixtures for moedit's UniPCMultistepScheduler (pipelines/scheduler_unipc.c).

diffusers' UniPCMultistepScheduler for flow matching (prediction_type "flow_prediction",
use_flow_sigmas), as HiDream-I1-Full ships it (flow_shift 3, solver_order 2, bh2) and in
variants that exercise the other branches, each at 1, 2, 5 and 30 inference steps:

    scheduler.set_timesteps(steps)       (HiDreamImagePipeline passes UniPC nothing else)
    for i, t in enumerate(timesteps): sample = scheduler.step(velocity[i], t, sample).prev_sample

with a random velocity per step in place of a model (the scheduler is linear in it), and,
for HiDream's config at 30 steps, the same from step 12 on (set_begin_index(12)), as an
image edit starts.

What it produces, in tests/fixtures/scheduler_unipc/:

  fixture.json                  "cases": [{"name", "config", "steps", "start"}], versions, seed
  <config>/scheduler_config.json  diffusers save_config of the scheduler
  io.safetensors                F32; sample [2, 4, 4] (shared), and per case c:
                                  c.sigmas [steps + 1], c.timesteps [steps] (diffusers: int64)
                                  c.velocity [steps - start, 2, 4, 4]
                                  c.samples [steps - start, 2, 4, 4]: the sample after each step

Rerun: python3 tools/make_unipc_fixtures.py   (needs torch, diffusers, safetensors)
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
from diffusers import UniPCMultistepScheduler  # noqa: E402

FIXTURE = os.path.join(common.FIXTURES, "scheduler_unipc")
SEED = 2025
FLOW = dict(prediction_type="flow_prediction", use_flow_sigmas=True)
CONFIGS = {
    "hidream_full": dict(flow_shift=3.0),
    "order1": dict(flow_shift=3.0, solver_order=1),
    "order3": dict(flow_shift=2.0, solver_order=3),
    "order3_bh1_sigma_min": dict(flow_shift=2.0, solver_order=3, solver_type="bh1", final_sigmas_type="sigma_min"),
    "sigma_min_all_orders": dict(flow_shift=3.0, final_sigmas_type="sigma_min", lower_order_final=False),
    "corrector_off_0_3": dict(flow_shift=6.0, disable_corrector=[0, 3]),
    "shift_terminal": dict(flow_shift=1.0, shift_terminal=0.1),
}
STEPS = (1, 2, 5, 30)


def run(scheduler, steps, start, sample, generator):
    scheduler.set_timesteps(steps)
    if start:
        scheduler.set_begin_index(start)
    velocities, samples = [], []
    x = sample.clone()
    for t in scheduler.timesteps[start:]:
        v = torch.randn(sample.shape, generator=generator)
        x = scheduler.step(v, t, x).prev_sample
        velocities.append(v)
        samples.append(x.clone())
    return torch.stack(velocities), torch.stack(samples)


def main():
    common.setup_determinism()
    if os.path.isdir(FIXTURE):
        shutil.rmtree(FIXTURE)
    os.makedirs(FIXTURE)
    generator = torch.Generator().manual_seed(SEED)
    sample = torch.randn((2, 4, 4), generator=generator)
    tensors = {"sample": sample}
    cases = []
    for name, extra in CONFIGS.items():
        scheduler = UniPCMultistepScheduler(**FLOW, **extra)
        scheduler.save_config(os.path.join(FIXTURE, name))
        # shift_terminal cannot stretch one step (its sigma is 1; diffusers gives NaN, moedit refuses).
        runs = [(steps, 0) for steps in STEPS if steps > 1 or "shift_terminal" not in extra]
        runs += [(30, 12)] if name == "hidream_full" else []
        for steps, start in runs:
            case = f"{name}.{steps}" + (f".from{start}" if start else "")
            scheduler = UniPCMultistepScheduler.from_config(scheduler.config)
            velocity, samples = run(scheduler, steps, start, sample, generator)
            assert torch.isfinite(samples).all(), case
            tensors[case + ".sigmas"] = scheduler.sigmas.float().contiguous()
            tensors[case + ".timesteps"] = scheduler.timesteps.float().contiguous()
            tensors[case + ".velocity"] = velocity.contiguous()
            tensors[case + ".samples"] = samples.contiguous()
            cases.append({"name": case, "config": name, "steps": steps, "start": start})
    save_file(tensors, os.path.join(FIXTURE, "io.safetensors"))
    common.write_info(FIXTURE, {"generator": "tools/make_unipc_fixtures.py",
                                "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__},
                                "seed": SEED, "sample_shape": [2, 4, 4], "cases": cases})
    print(f"{common.list_files(FIXTURE, 60)} B in {len(cases)} cases")


if __name__ == "__main__":
    sys.exit(main())
