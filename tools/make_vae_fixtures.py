#!/usr/bin/env python3
"""Generate small reference fixtures for the C AutoencoderKL (vae/) implementation.

What it produces (float32 reference computed by diffusers on the CPU, everything seeded):

  tests/fixtures/vae_sd/     SD-like config: block_out_channels [16, 32, 32, 32] (downscale 8),
                             norm_num_groups 8, layers_per_block 1, latent_channels 4,
                             quant_conv and post_quant_conv present, shift_factor null.
                             latents [4, 5, 7] -> decoded [3, 40, 56]; image [3, 48, 40] -> mean [4, 6, 5].
  tests/fixtures/vae_flux/   FLUX-like config: block_out_channels [8, 16, 16, 16], norm_num_groups 4,
                             layers_per_block 2, latent_channels 16, use_quant_conv and
                             use_post_quant_conv false (no quant_conv weights), shift_factor 0.1159,
                             scaling_factor 0.3611.
                             latents [16, 6, 4] -> decoded [3, 48, 32]; image [3, 32, 56] -> mean [16, 4, 7].
  tests/fixtures/vae_tiny_noattn/  two levels only (downscale 2), block_out_channels [8, 16],
                             norm_num_groups 4, mid_block_add_attention false, odd sizes:
                             latents [4, 3, 5] -> decoded [3, 6, 10]; image [3, 10, 6] -> mean [4, 5, 3].

  Each fixture directory contains
    vae/config.json                          (diffusers save_pretrained)
    vae/diffusion_pytorch_model.safetensors  (diffusers save_pretrained; BF16: every parameter is
                                              rounded to a BF16 value first, so the float32
                                              reference runs on exactly the stored values)
    io.safetensors   float32, batch dim (1) dropped:
        latents [C, h, w]          input of AutoencoderKL.decode (already latents / scaling_factor
                                   + shift_factor: the decoder applies neither)
        decoded [3, f*h, f*w]      AutoencoderKL.decode(latents).sample, before any clamping
                                   (f = 2^(levels - 1): 8, or 2 for vae_tiny_noattn)
        image [3, H, W]            input of AutoencoderKL.encode, uniform in [-1, 1]
        encoded_mean [C, H/f, W/f] AutoencoderKL.encode(image).latent_dist.mean (raw: neither
                                   shift nor scaling applied)
      Its __metadata__ has one key, "fixture": JSON with name, seed and shapes.
    fixture.json     seed, model config, tensor shapes and stats.

Every parameter is re-initialised randomly (GroupNorm affine included, nothing trivially 0 or 1):
convolution and linear weights randn / sqrt(fan_in), biases randn * 0.1, GroupNorm weights
1 + 0.2 randn and biases 0.1 randn.

Size: about 1.06 MiB in total (asserted below 1.5 MiB), almost all of it the BF16 weights.

Rerun (overwrites the fixtures):

    python3 tools/make_vae_fixtures.py

Requires torch, diffusers (developed against 0.42.1), safetensors. CPU only.
"""

import json
import math
import os
import shutil
import sys

import torch
import torch.nn as nn
from safetensors.torch import save_file

import diffusers
from diffusers import AutoencoderKL

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_common import FIXTURES, list_files, round_parameters_, setup_determinism, write_info  # noqa: E402
MAX_TOTAL_BYTES = int(1.5 * 2**20)

CONFIGS = {
    "vae_sd": dict(
        seed=2024,
        model=dict(
            in_channels=3,
            out_channels=3,
            down_block_types=["DownEncoderBlock2D"] * 4,
            up_block_types=["UpDecoderBlock2D"] * 4,
            block_out_channels=[16, 32, 32, 32],
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=8,
            sample_size=64,
            scaling_factor=0.18215,
        ),
        latent_shape=[4, 5, 7],
        image_shape=[3, 48, 40],
    ),
    "vae_flux": dict(
        seed=4096,
        model=dict(
            in_channels=3,
            out_channels=3,
            down_block_types=["DownEncoderBlock2D"] * 4,
            up_block_types=["UpDecoderBlock2D"] * 4,
            block_out_channels=[8, 16, 16, 16],
            layers_per_block=2,
            latent_channels=16,
            norm_num_groups=4,
            sample_size=64,
            scaling_factor=0.3611,
            shift_factor=0.1159,
            use_quant_conv=False,
            use_post_quant_conv=False,
        ),
        latent_shape=[16, 6, 4],
        image_shape=[3, 32, 56],
    ),
    "vae_tiny_noattn": dict(
        seed=77,
        model=dict(
            in_channels=3,
            out_channels=3,
            down_block_types=["DownEncoderBlock2D"] * 2,
            up_block_types=["UpDecoderBlock2D"] * 2,
            block_out_channels=[8, 16],
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=4,
            sample_size=16,
            mid_block_add_attention=False,
        ),
        latent_shape=[4, 3, 5],
        image_shape=[3, 10, 6],
    ),
}


@torch.no_grad()
def reinit_(model: nn.Module, gen: torch.Generator):
    """Re-initialise every parameter randomly (nothing trivially 0 or 1)."""
    done = set()

    def randn(shape):
        return torch.randn(shape, generator=gen, dtype=torch.float32)

    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            fan_in = mod.weight[0].numel()
            mod.weight.copy_(randn(mod.weight.shape) / math.sqrt(fan_in))
            done.add(id(mod.weight))
            if mod.bias is not None:
                mod.bias.copy_(randn(mod.bias.shape) * 0.1)
                done.add(id(mod.bias))
        elif isinstance(mod, nn.GroupNorm):
            assert mod.eps == 1e-6, name
            mod.weight.copy_(1.0 + 0.2 * randn(mod.weight.shape))
            mod.bias.copy_(0.1 * randn(mod.bias.shape))
            done.add(id(mod.weight))
            done.add(id(mod.bias))
    missing = [n for n, p in model.named_parameters() if id(p) not in done]
    assert not missing, f"parameters not re-initialised: {missing}"


def run_model(model, latents, image):
    with torch.no_grad():
        decoded = model.decode(latents).sample
        mean = model.encode(image).latent_dist.mean
    return decoded, mean


def build(name, cfg):
    out_dir = os.path.join(FIXTURES, name)
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)

    seed = cfg["seed"]
    torch.manual_seed(seed)
    model = AutoencoderKL(**cfg["model"]).eval()
    gen = torch.Generator().manual_seed(seed)
    reinit_(model, gen)
    round_parameters_(model, torch.bfloat16)
    if not cfg["model"].get("use_quant_conv", True):
        assert model.quant_conv is None and model.post_quant_conv is None

    latents = torch.randn([1] + cfg["latent_shape"], generator=gen)
    image = torch.rand([1] + cfg["image_shape"], generator=gen) * 2 - 1
    decoded, mean = run_model(model, latents, image)
    factor = 2 ** (len(cfg["model"]["block_out_channels"]) - 1)
    C, h, w = cfg["latent_shape"]
    assert list(decoded.shape) == [1, cfg["model"]["out_channels"], factor * h, factor * w]
    _, H, W = cfg["image_shape"]
    assert list(mean.shape) == [1, C, H // factor, W // factor]
    assert torch.isfinite(decoded).all() and torch.isfinite(mean).all()

    # Determinism, and the saved BF16 weights reproduce the reference exactly.
    decoded2, mean2 = run_model(model, latents, image)
    assert torch.equal(decoded, decoded2) and torch.equal(mean, mean2), "not deterministic"
    vdir = os.path.join(out_dir, "vae")
    model.to(torch.bfloat16).save_pretrained(vdir, safe_serialization=True)
    model.to(torch.float32)
    reloaded = AutoencoderKL.from_pretrained(vdir, torch_dtype=torch.float32, low_cpu_mem_usage=False).eval()
    decoded3, mean3 = run_model(reloaded, latents, image)
    assert torch.equal(decoded, decoded3) and torch.equal(mean, mean3), "reloaded VAE differs"

    tensors = {
        "latents": latents[0],
        "decoded": decoded[0],
        "image": image[0],
        "encoded_mean": mean[0],
    }
    tensors = {k: v.detach().float().contiguous() for k, v in tensors.items()}
    shapes = {k: list(v.shape) for k, v in tensors.items()}
    # A single metadata key keeps the file bytes reproducible (see make_dit_fixtures.py).
    meta = {"fixture": json.dumps({"name": name, "seed": seed, "shapes": shapes}, sort_keys=True)}
    save_file(tensors, os.path.join(out_dir, "io.safetensors"), metadata=meta)

    info = {
        "name": name,
        "seed": seed,
        "generator": "tools/make_vae_fixtures.py",
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__},
        "model_config": cfg["model"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "tensors": shapes,
        "stats": {
            k: {"rms": v.pow(2).mean().sqrt().item(), "max_abs": v.abs().max().item()} for k, v in tensors.items()
        },
        "notes": [
            "batch dim of 1 dropped from every tensor",
            "latents are the decoder input as is (already / scaling_factor + shift_factor)",
            "encoded_mean is the raw posterior mean (first latent_channels of the moments)",
            "decoded is not clamped",
        ],
    }
    write_info(out_dir, info)
    return out_dir, info


def main():
    setup_determinism()
    total = 0
    for name, cfg in CONFIGS.items():
        out_dir, info = build(name, cfg)
        print(f"{name}: seed {info['seed']}, {info['parameters']} parameters")
        size = list_files(out_dir, 60)
        for k, shape in info["tensors"].items():
            st = info["stats"][k]
            print(f"    {k:14s} {str(shape):14s} rms {st['rms']:.4f} max-abs {st['max_abs']:.4f}")
        total += size
    print(f"all VAE fixtures: {total} B ({total / 2**20:.2f} MiB)")
    assert total < MAX_TOTAL_BYTES, f"VAE fixtures take {total} B, more than {MAX_TOTAL_BYTES}"


if __name__ == "__main__":
    sys.exit(main())
