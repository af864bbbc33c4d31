#!/usr/bin/env python3
"""The FP8 reference of the transformer (tests/fixtures/dit_fp8/io.safetensors): diffusers'
HiDreamImageTransformer2DModel on the dit_moe fixture's weights and inputs (tools/make_dit_fixtures.py),
with every linear layer that moedit's --precision fp8 quantizes (all but the x/t/p embedders; the MoE
gates are no nn.Linear) replaced by the FP8 rule of docs/fp8.md:

    w_scale[n] = amax(w[n, :]) / 448 (1 for a zero row),  w_code = e4m3(w / w_scale)
    x_scale[m] = amax(x[m, :]) / 448 (1 for a zero row),  x_code = e4m3(x / x_scale)
    y[m, n]    = (sum_k x_code[m, k] w_code[n, k]) * (x_scale[m] * w_scale[n]) + bias[n]

(e4m3 = torch's float8_e4m3fn cast after a clamp to +-448: round to nearest even, saturating; the sum
in float64). Written: the inputs as dit_moe has them, `output` and every intermediate of
make_dit_fixtures.capture (x_embed, temb, double_<i>_image/_text, single_<i>, final, the first blocks'
routing) in FP8, and `output_f32`, the float32 model's output, for the size of FP8's own error.

Run: python3 tools/make_fp8_dit_fixture.py  (after make_dit_fixtures.py; CPU, a few seconds)"""
import os
import sys

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_common import FIXTURES, list_files, setup_determinism, write_info  # noqa: E402
from make_dit_fixtures import CONFIGS, capture, run_model  # noqa: E402
from make_fp8_fixtures import quantize_rows  # noqa: E402

from diffusers import HiDreamImageTransformer2DModel  # noqa: E402

NOT_QUANTIZED = ("x_embedder.", "t_embedder.", "p_embedder.")


class FP8Linear(nn.Module):
    def __init__(self, linear):
        super().__init__()
        self.codes, self.scale = quantize_rows(linear.weight.detach().float())
        self.bias = linear.bias

    def forward(self, x):
        rows = x.reshape(-1, x.shape[-1]).float()
        codes, scale = quantize_rows(rows)
        acc = codes.double() @ self.codes.double().T
        y = acc * (scale.double()[:, None] * self.scale.double()[None, :])
        if self.bias is not None:
            y = y + self.bias.double()
        return y.float().reshape(*x.shape[:-1], -1)


def quantize_model_(model):
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and not n.startswith(NOT_QUANTIZED)]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, FP8Linear(getattr(parent, child)))
    return names


def relative_rms(a, b):
    return ((a - b).pow(2).mean() / b.pow(2).mean()).sqrt().item()


def main():
    setup_determinism()
    source = os.path.join(FIXTURES, "dit_moe")
    io = load_file(os.path.join(source, "io.safetensors"))
    cfg = CONFIGS["dit_moe"]
    model = HiDreamImageTransformer2DModel.from_pretrained(os.path.join(source, "transformer"),
                                                           torch_dtype=torch.float32).eval()
    inputs = (io["latents"][None], io["timestep"], io["prompt_embeds_t5"][None], io["prompt_embeds_llama3"][:, None],
              io["pooled_prompt_embeds"][None])
    out_f32 = run_model(model, inputs)[0]
    names = quantize_model_(model)
    out, caps, gate_stats, _ = capture(model, inputs, cfg)
    out = out[0]
    out_dir = os.path.join(FIXTURES, "dit_fp8")
    os.makedirs(out_dir, exist_ok=True)
    tensors = {k: io[k] for k in ("latents", "timestep", "prompt_embeds_t5", "prompt_embeds_llama3",
                                  "pooled_prompt_embeds")}
    tensors.update(caps)
    tensors["output"] = out.contiguous()
    tensors["output_f32"] = out_f32.contiguous()
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out_dir, "io.safetensors"))
    info = dict(name="dit_fp8", generator="tools/make_fp8_dit_fixture.py", weights="tests/fixtures/dit_moe/transformer",
                quantized_linear_layers=len(names), min_routing_margin=gate_stats["min_margin"],
                fp8_vs_f32_relative_rms=relative_rms(out, out_f32),
                versions=dict(torch=torch.__version__))
    write_info(out_dir, info)
    print(f"{len(names)} linear layers in FP8; output vs float32: relative rms {info['fp8_vs_f32_relative_rms']:.4f}; "
          f"smallest routing margin {gate_stats['min_margin']:.2e}")
    list_files(out_dir, 40)


if __name__ == "__main__":
    main()
