"""PyTorch/diffusers baselines for docs/benchmarks.md, on the same shapes
moedit's `bench` and `bench-vae` time.

  transformer: diffusers HiDreamImageTransformer2DModel in bfloat16 with its
               own attention processor (F.scaled_dot_product_attention), random
               weights of a config.json (e.g. tools/configs/hidream_i1_full_transformer.json),
               one sample: latents [1, 16, H/8, W/8], t5 [1, T, 4096],
               llama3 [layers, 1, T, 4096], pooled [1, 2048]; per-forward
               median over --iterations after --warmup, peak GPU memory. With
               --profile FILE one more forward runs under torch.profiler: FILE
               gets its kernels by GPU time, and the JSON line the time by kind
               (attention, matrix products, other), to set beside moedit's
               MOEDIT_PROFILE_OPS table.
  vae:         diffusers AutoencoderKL with the FLUX.1 VAE config in bfloat16,
               random weights; decode of [1, 16, H/8, W/8]. With --save-vae DIR
               the weights are saved in diffusers format so that
               `moedit bench-vae --vae DIR` decodes with the very same weights.

Prints one JSON line per measurement.
usage: python3 tools/bench_diffusers.py transformer --config FILE --height 1024 --width 1024
       python3 tools/bench_diffusers.py vae --height 1024 --width 1024 --save-vae /tmp/flux_vae
"""
import argparse
import json
import statistics
import time

import torch

FLUX_VAE = dict(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=[128, 256, 512, 512],
                down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                layers_per_block=2, norm_num_groups=32, scaling_factor=0.3611, shift_factor=0.1159,
                use_quant_conv=False, use_post_quant_conv=False, mid_block_add_attention=True)


def timed(fn, warmup, iterations):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(1e3 * (time.perf_counter() - start))
    times.sort()
    return statistics.median(times), times[0], times[-1]


def kernel_kind(name):
    """attention, matrix products or other kernels, from a CUDA kernel's name."""
    n = name.lower()
    if any(s in n for s in ("flash", "fmha", "attention", "sdpa", "cudnn")):
        return "attention"
    if any(s in n for s in ("gemm", "cutlass", "xmma", "nvjet", "matmul", "cublas")):
        return "matrix products"
    return "other kernels"


def profile_once(fn, path):
    """Runs fn once under torch.profiler; writes its GPU kernels by time to
    path and returns the milliseconds by kernel_kind."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    rows = []
    for e in prof.key_averages():
        us = getattr(e, "self_device_time_total", 0) or 0
        if us > 0:
            rows.append((e.key, us / 1e3, e.count))
    rows.sort(key=lambda r: -r[1])
    kinds = {}
    with open(path, "w") as f:
        for name, ms, count in rows:
            kinds[kernel_kind(name)] = kinds.get(kernel_kind(name), 0.0) + ms
            f.write(f"{ms:10.3f} ms {count:7d}  {kernel_kind(name):16s} {name[:160]}\n")
    return {k: round(v, 2) for k, v in sorted(kinds.items())}


@torch.no_grad()
def bench_transformer(args):
    from diffusers import HiDreamImageTransformer2DModel
    with open(args.config) as f:
        config = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    torch.manual_seed(0)
    with torch.device("cuda"):
        torch.set_default_dtype(torch.bfloat16)
        model = HiDreamImageTransformer2DModel(**config).eval()
        torch.set_default_dtype(torch.float32)
    layers = max(config["llama_layers"]) + 1
    h, w, t, b = args.height // 8, args.width // 8, args.text_tokens, args.batch
    dev, bf = "cuda", torch.bfloat16
    # batch 2 is a CFG step as HiDreamImagePipeline runs it: both branches in one forward.
    inputs = dict(hidden_states=torch.randn(b, config["in_channels"], h, w, device=dev, dtype=bf),
                  timesteps=torch.tensor([500.0] * b, device=dev, dtype=bf),
                  encoder_hidden_states_t5=torch.randn(b, t, config["caption_channels"][0], device=dev, dtype=bf),
                  encoder_hidden_states_llama3=torch.randn(layers, b, t, config["caption_channels"][1], device=dev,
                                                           dtype=bf),
                  pooled_embeds=torch.randn(b, config["text_emb_dim"], device=dev, dtype=bf))
    torch.cuda.reset_peak_memory_stats()
    median, low, high = timed(lambda: model(**inputs), args.warmup, args.iterations)
    result = {"what": "diffusers transformer", "batch": b, "height": args.height, "width": args.width,
              "text_tokens": t, "forward_ms_median": round(median, 2), "forward_ms_min": round(low, 2),
              "forward_ms_max": round(high, 2), "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
              "parameters": sum(p.numel() for p in model.parameters()),
              "torch": torch.__version__, "gpu": torch.cuda.get_device_name()}
    if args.profile:
        result["profile_ms_by_kind"] = profile_once(lambda: model(**inputs), args.profile)
    print(json.dumps(result), flush=True)


@torch.no_grad()
def bench_vae(args):
    from diffusers import AutoencoderKL
    torch.manual_seed(0)
    model = AutoencoderKL(**FLUX_VAE).to("cuda", torch.bfloat16).eval()
    if args.save_vae:
        model.save_pretrained(args.save_vae, safe_serialization=True)
    latents = torch.randn(1, 16, args.height // 8, args.width // 8, device="cuda", dtype=torch.bfloat16)
    torch.cuda.reset_peak_memory_stats()
    median, low, high = timed(lambda: model.decode(latents).sample, args.warmup, args.iterations)
    print(json.dumps({"what": "diffusers vae decode (FLUX config)", "height": args.height, "width": args.width,
                      "decode_ms_median": round(median, 2), "decode_ms_min": round(low, 2),
                      "decode_ms_max": round(high, 2),
                      "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["transformer", "vae"])
    parser.add_argument("--config")
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--text-tokens", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1, choices=[1, 2],
                        help="transformer: 2 runs both CFG branches in one forward (a denoising step)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--save-vae")
    parser.add_argument("--profile", help="transformer: one more forward under torch.profiler, kernels to this file")
    args = parser.parse_args()
    (bench_transformer if args.what == "transformer" else bench_vae)(args)


if __name__ == "__main__":
    main()
