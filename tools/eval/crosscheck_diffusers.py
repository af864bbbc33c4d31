"""Cross-check models/demo against diffusers/transformers/tokenizers.

The folder is loaded with the libraries' own from_pretrained (tokenizers.Tokenizer,
transformers.LlamaModel, diffusers' HiDreamImageTransformer2DModel, AutoencoderKL and
FlowMatchEulerDiscreteScheduler) and run through diffusers' HiDreamImagePipeline loop with
moedit's text conditioning rule (pipelines/text_conditioning.h), as
tools/make_tiny_model.py's reference does: velocity = -transformer(...), CFG
uncond + g (cond - uncond), scheduler.step, decode latents / scaling_factor + shift_factor.
moedit runs the same prompt from the same initial noise (--init-noise); the two pictures
and final latents are compared.

    python3 tools/eval/crosscheck_diffusers.py --moedit build-cpu/moedit --model models/demo
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file


@torch.no_grad()
def embeds(tok, encoder, text):
    ids = torch.tensor([tok.encode(text).ids])
    hs = torch.stack(encoder(input_ids=ids, output_hidden_states=True).hidden_states, 0)[:, 0]
    return {"t5": hs[-1][None], "llama": hs[1:][:, None], "pooled": hs[-1].mean(0)[None]}


@torch.no_grad()
def reference(model, prompt, noise, steps, guidance):
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, HiDreamImageTransformer2DModel
    from tokenizers import Tokenizer
    from transformers import LlamaModel
    tok = Tokenizer.from_file(os.path.join(model, "tokenizer", "tokenizer.json"))
    encoder = LlamaModel.from_pretrained(os.path.join(model, "text_encoder"), dtype=torch.float32).eval()
    transformer = HiDreamImageTransformer2DModel.from_pretrained(os.path.join(model, "transformer"),
                                                                 torch_dtype=torch.float32).eval()
    vae = AutoencoderKL.from_pretrained(os.path.join(model, "vae"), torch_dtype=torch.float32).eval()
    scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(os.path.join(model, "scheduler"))
    cond, uncond = embeds(tok, encoder, prompt), embeds(tok, encoder, "")
    velocity = lambda x, t, e: -transformer(hidden_states=x, timesteps=t.reshape(1), encoder_hidden_states_t5=e["t5"],
                                            encoder_hidden_states_llama3=e["llama"],
                                            pooled_embeds=e["pooled"]).sample
    scheduler.set_timesteps(steps)
    latents = noise[None].clone()
    for t in scheduler.timesteps:
        v_cond, v_uncond = velocity(latents, t, cond), velocity(latents, t, uncond)
        v = v_uncond + guidance * (v_cond - v_uncond)
        latents = scheduler.step(v, t, latents).prev_sample
    image = vae.decode(latents / vae.config.scaling_factor + vae.config.shift_factor).sample[0]
    pixels = ((image / 2 + 0.5).clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return latents[0], pixels


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--moedit", default="build-cpu/moedit")
    ap.add_argument("--model", default="models/demo")
    ap.add_argument("--prompt", default="a red circle on a blue background")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=4.0)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", default="", help="also write the diffusers picture here")
    args = ap.parse_args()
    torch.set_num_threads(2)
    channels = json.load(open(os.path.join(args.model, "transformer", "config.json")))["in_channels"]
    noise = torch.randn((channels, args.size // 8, args.size // 8), generator=torch.Generator().manual_seed(args.seed))
    ref_latents, ref_pixels = reference(args.model, args.prompt, noise, args.steps, args.guidance)
    with tempfile.TemporaryDirectory() as work:
        save_file({"latents": noise.contiguous()}, os.path.join(work, "noise.safetensors"))
        subprocess.run([args.moedit, "generate", "--model", args.model, "--prompt", args.prompt, "--height",
                        str(args.size), "--width", str(args.size), "--num-inference-steps", str(args.steps),
                        "--guidance-scale", str(args.guidance), "--init-noise", os.path.join(work, "noise.safetensors"),
                        "--output-latents", os.path.join(work, "latents.safetensors"), "--output",
                        os.path.join(work, "moedit.png"), "--quiet"], check=True)
        latents = load_file(os.path.join(work, "latents.safetensors"))["latents"]
        pixels = np.asarray(Image.open(os.path.join(work, "moedit.png")).convert("RGB"))
    if args.save:
        Image.fromarray(ref_pixels).save(args.save)
    latent_diff = (latents - ref_latents).abs().max().item() / ref_latents.abs().max().item()
    pixel_diff = np.abs(pixels.astype(int) - ref_pixels.astype(int))
    print(f"moedit vs diffusers, \"{args.prompt}\", {args.steps} steps, guidance {args.guidance}: final latents "
          f"max |diff| {latent_diff:.2e} of their max; pixels max |diff| {pixel_diff.max()}, "
          f"{(pixel_diff > 1).mean() * 100:.3f}% differ by more than 1")
    return 0 if latent_diff < 1e-3 and (pixel_diff > 1).mean() < 0.01 else 1


if __name__ == "__main__":
    sys.exit(main())
