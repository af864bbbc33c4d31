#!/usr/bin/env python3
"""Reference fixtures for the C flow-matching scheduler (pipelines/scheduler.c).

Runs diffusers' FlowMatchEulerDiscreteScheduler the way the pipelines call it, for each config
below and 1, 7, 30 and 50 inference steps:

    scheduler.set_timesteps(steps, sigmas=custom or None, mu=calculate_shift(image_seq_len, config line))

(retrieve_timesteps passes sigmas without steps when sigmas are given; the result is the same.)
HiDream's pipeline passes mu = calculate_shift(transformer.max_seq) (4096 for 128x128 max
resolution, patch 2) and no sigmas; its checkpoints turn dynamic shifting off, so mu is ignored.
FLUX passes sigmas = np.linspace(1, 1/steps, steps) and mu from the latent token count.

What it produces, in tests/fixtures/scheduler/:

  fixture.json               "configs": the config names; versions, shapes, seed, notes
  <config>/scheduler_config.json
                             diffusers save_config of the scheduler (_class_name and every key)
  <config>/call.json         how the pipeline calls it: "steps" [1, 7, 30, 50], "image_seq_len"
                             (for mu), "mu" (calculate_shift's value, float64), "custom_sigmas"
                             (true: FLUX's linspace), "strength", and per steps: "fails" (1 where
                             diffusers gives non-finite sigmas, which the C code must refuse),
                             "step_index", "start_index" (-1 where it fails)
  io.safetensors             F32 tensors; sample, velocity, noise [4, 4, 4] (shared), and per
                             config c and steps n:
                               c.n.sigmas [n+1], c.n.timesteps [n]  (diffusers holds float32: exact)
                               c.n.custom_sigmas [n]  (when custom; diffusers casts them to float32)
                               c.n.step [4, 4, 4]     step(velocity, timesteps[i], sample), i = step_index
                               c.n.scale_noise [4,4,4] scale_noise(sample, timesteps[start], noise) after
                                                       FluxImg2ImgPipeline.get_timesteps(n, strength)

Size: about 70 KB. Rerun (overwrites the fixtures):

    python3 tools/make_scheduler_fixtures.py

Requires torch, diffusers (developed against 0.42.1), numpy (2.x: NEP 50 promotion decides the
float32 arithmetic of custom sigmas), safetensors. CPU only, no weights.
"""

import json
import os
import shutil
import sys
import types

import numpy as np
import torch
from safetensors.torch import save_file

import diffusers
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.pipelines.flux.pipeline_flux import calculate_shift
from diffusers.pipelines.flux.pipeline_flux_img2img import FluxImg2ImgPipeline
from fixture_common import write_info

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "scheduler")

SEED = 2024
STEPS = [1, 7, 30, 50]
STRENGTH = 0.6
SAMPLE_SHAPE = [4, 4, 4]

FLUX = dict(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
            max_image_seq_len=4096)
LTX = dict(shift=1.0, use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05, base_image_seq_len=1024,
           max_image_seq_len=4096, shift_terminal=0.1)

# name: scheduler kwargs, the image_seq_len the pipeline derives mu from, custom sigmas or not.
CONFIGS = {
    # HiDream-I1-Fast (shift 3) and -Dev (shift 6): static shift, mu passed but unused, no sigmas.
    "hidream_shift3": dict(config=dict(shift=3.0), image_seq_len=4096, custom=False),
    "hidream_shift6": dict(config=dict(shift=6.0), image_seq_len=4096, custom=False),
    "static_shift3_custom": dict(config=dict(shift=3.0), image_seq_len=4096, custom=True),
    # A shift and T whose float32 rounding is not trivial.
    "odd_shift_t500": dict(config=dict(shift=1.7, num_train_timesteps=500), image_seq_len=4096, custom=False),
    # FLUX.1-dev: dynamic exponential shift, custom linspace sigmas.
    "flux_dynamic_1024": dict(config=FLUX, image_seq_len=1024, custom=True),
    "flux_dynamic_4096": dict(config=FLUX, image_seq_len=4096, custom=True),
    "dynamic_default": dict(config=FLUX, image_seq_len=1024, custom=False),
    "dynamic_linear": dict(config=dict(FLUX, time_shift_type="linear"), image_seq_len=2048, custom=False),
    "dynamic_linear_custom": dict(config=dict(FLUX, time_shift_type="linear"), image_seq_len=2048, custom=True),
    "shift_terminal": dict(config=dict(shift=3.0, shift_terminal=0.05), image_seq_len=4096, custom=False),
    # LTX-Video: dynamic shift with shift_terminal, custom sigmas.
    "ltx_terminal_custom": dict(config=LTX, image_seq_len=3000, custom=True),
    "invert_sigmas": dict(config=dict(shift=3.0, invert_sigmas=True), image_seq_len=4096, custom=False),
    "karras": dict(config=dict(shift=3.0, use_karras_sigmas=True), image_seq_len=4096, custom=False),
    "exponential_dynamic": dict(config=dict(FLUX, use_exponential_sigmas=True), image_seq_len=1024, custom=True),
}


def run_case(cfg, steps, sample, velocity, noise):
    sched = FlowMatchEulerDiscreteScheduler(**cfg["config"])
    c = sched.config
    mu = calculate_shift(cfg["image_seq_len"], c.base_image_seq_len, c.max_image_seq_len, c.base_shift, c.max_shift)
    custom = np.linspace(1.0, 1 / steps, steps) if cfg["custom"] else None
    with np.errstate(all="ignore"):
        sched.set_timesteps(steps, sigmas=custom, mu=mu)
    sigmas, timesteps = sched.sigmas.clone(), sched.timesteps.clone()
    assert sigmas.dtype == torch.float32 and timesteps.dtype == torch.float32
    assert sigmas.shape == (steps + 1,) and timesteps.shape == (steps,)
    out = {"mu": mu, "sigmas": sigmas, "timesteps": timesteps, "fails": not bool(torch.isfinite(sigmas).all())}
    if custom is not None:
        out["custom_sigmas"] = torch.from_numpy(custom.astype(np.float32))
    if out["fails"]:
        return out

    # One Euler step at the middle of the schedule (the only one for 1 step).
    i = steps // 2
    sched.set_begin_index(i)
    out["step_index"] = i
    out["step"] = sched.step(velocity[None], timesteps[i], sample[None].clone(), return_dict=False)[0][0]

    # img2img on a fresh schedule (scale_noise after a step would use the step index): FLUX's
    # get_timesteps picks the start and sets begin_index; scale_noise noises there.
    with np.errstate(all="ignore"):
        sched.set_timesteps(steps, sigmas=custom, mu=mu)
    pipe = types.SimpleNamespace(scheduler=sched)
    ts, remaining = FluxImg2ImgPipeline.get_timesteps(pipe, steps, STRENGTH, "cpu")
    start = steps - remaining
    assert sched.begin_index == start and torch.equal(ts, timesteps[start:])
    out["start_index"] = start
    out["scale_noise"] = sched.scale_noise(sample[None], ts[:1], noise[None])[0]
    return out


def main():
    torch.set_num_threads(1)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    gen = torch.Generator().manual_seed(SEED)
    sample = torch.randn(SAMPLE_SHAPE, generator=gen) * 1.5
    velocity = torch.randn(SAMPLE_SHAPE, generator=gen) * 2.0
    noise = torch.randn(SAMPLE_SHAPE, generator=gen)
    tensors = {"sample": sample, "velocity": velocity, "noise": noise}

    for name, cfg in CONFIGS.items():
        d = os.path.join(OUT, name)
        os.makedirs(d)
        FlowMatchEulerDiscreteScheduler(**cfg["config"]).save_config(d)
        call = {"steps": STEPS, "image_seq_len": cfg["image_seq_len"], "mu": None, "custom_sigmas": cfg["custom"],
                "strength": STRENGTH, "fails": [], "step_index": [], "start_index": []}
        for steps in STEPS:
            r = run_case(cfg, steps, sample, velocity, noise)
            call["mu"] = r["mu"]
            call["fails"].append(int(r["fails"]))
            call["step_index"].append(r.get("step_index", -1))
            call["start_index"].append(r.get("start_index", -1))
            for key in ("sigmas", "timesteps", "custom_sigmas", "step", "scale_noise"):
                if key in r:
                    tensors[f"{name}.{steps}.{key}"] = r[key].contiguous()
            s = r["sigmas"]
            print(f"{name:22s} steps {steps:2d}: sigmas {s[0].item():.6f} .. {s[-2].item():.6f}"
                  f"{'  (non-finite: C must refuse)' if r['fails'] else ''}")
        with open(os.path.join(d, "call.json"), "w") as f:
            f.write("{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in call.items()) + "\n}\n")

    for k, v in tensors.items():
        assert v.dtype == torch.float32, k
    meta = {"fixture": json.dumps({"seed": SEED, "configs": list(CONFIGS)}, sort_keys=True)}
    save_file(tensors, os.path.join(OUT, "io.safetensors"), metadata=meta)
    info = {
        "generator": "tools/make_scheduler_fixtures.py",
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__, "numpy": np.__version__},
        "seed": SEED,
        "configs": list(CONFIGS),
        "sample_shape": SAMPLE_SHAPE,
        "notes": [
            "mu = calculate_shift(image_seq_len, base_image_seq_len, max_image_seq_len, base_shift, max_shift)",
            "custom sigmas = np.linspace(1, 1/steps, steps) as the FLUX pipelines pass them",
            "step: scheduler.step at step_index (set_begin_index), sample and velocity float32",
            "scale_noise: after FluxImg2ImgPipeline.get_timesteps(steps, strength), at start_index",
        ],
    }
    write_info(OUT, info)
    total = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(OUT) for fn in fns)
    print(f"{len(tensors)} tensors; fixtures total {total} B")


if __name__ == "__main__":
    sys.exit(main())
