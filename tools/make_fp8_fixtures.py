"""FP8 reference fixtures (tests/fixtures/fp8/io.safetensors), from PyTorch's own float8 dtypes.

  e4m3_values, e5m2_values  F32 [256]: torch's float32 value of every code of float8_e4m3fn / float8_e5m2
  quant_inputs              F32 [N]: every value halfway between two neighbouring e4m3 values (the ties),
                            just beside them, every e4m3 value, values past 448, infinities, and random values
  quant_codes               F8_E4M3 [N]: x.clamp(-448, 448).to(torch.float8_e4m3fn) of each
  linear_x, linear_w, linear_bias, linear_y  the FP8 linear rule of docs/fp8.md: weights quantized per output
                            channel, activations per row (scale = amax / 448, zero row: 1), products of the
                            codes summed in float64, times x_scale[m] * w_scale[n], plus the bias
  linear_w_codes F8_E4M3 [N, K], linear_w_scale F32 [N]: the weight's quantization
Run: python3 tools/make_fp8_fixtures.py"""
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_common import FIXTURES, list_files  # noqa: E402

E4M3_MAX = 448.0


def quantize_rows(x):
    """The rule of docs/fp8.md: per row, scale = amax / 448 (float32; 1 for a zero row), code = e4m3(x / scale)."""
    amax = x.abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / E4M3_MAX, torch.ones_like(amax))
    codes = (x / scale[:, None]).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
    return codes, scale


def fp8_linear(x, codes_w, scale_w, bias):
    codes_x, scale_x = quantize_rows(x)
    acc = codes_x.to(torch.float64) @ codes_w.to(torch.float64).T
    return (acc * (scale_x.double()[:, None] * scale_w.double()[None, :]) + bias.double()).float()


def quant_inputs(generator):
    codes = torch.arange(256, dtype=torch.uint8)
    values = codes.view(torch.float8_e4m3fn).float()
    positive = torch.sort(values[(values >= 0) & torch.isfinite(values)]).values
    ties = (positive[1:] + positive[:-1]) / 2
    beside = torch.cat([torch.nextafter(ties, torch.full_like(ties, 1e9)), torch.nextafter(ties, torch.zeros_like(ties))])
    wide = torch.randn(4096, generator=generator) * torch.exp2(torch.randint(-12, 10, (4096,), generator=generator).float())
    special = torch.tensor([0.0, -0.0, 448.0, 449.0, 463.9, 464.0, 480.0, 1e6, float("inf"), 2.0 ** -10, 2.0 ** -9,
                            3 * 2.0 ** -10])
    x = torch.cat([positive, ties, beside, wide, special])
    return torch.cat([x, -x])


def main():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(32)
    out = os.path.join(FIXTURES, "fp8")
    os.makedirs(out, exist_ok=True)
    codes = torch.arange(256, dtype=torch.uint8)
    inputs = quant_inputs(generator)
    x = torch.randn(5, 96, generator=generator) * torch.tensor([1.0, 30.0, 1e-3, 0.0, 5.0])[:, None]
    x[4, 7] = 300.0  # one outlier: the row's scale follows it
    w = torch.randn(40, 96, generator=generator) / 96 ** 0.5
    w[3] = 0.0  # a zero output channel: scale 1, codes 0
    bias = torch.randn(40, generator=generator) * 0.1
    w_codes, w_scale = quantize_rows(w)
    tensors = {
        "e4m3_values": codes.view(torch.float8_e4m3fn).float(),
        "e5m2_values": codes.view(torch.float8_e5m2).float(),
        "quant_inputs": inputs,
        "quant_codes": inputs.clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn),
        "linear_x": x, "linear_w": w, "linear_bias": bias,
        "linear_w_codes": w_codes, "linear_w_scale": w_scale,
        "linear_y": fp8_linear(x, w_codes, w_scale, bias),
    }
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, "io.safetensors"))
    list_files(out, 40)


if __name__ == "__main__":
    main()
