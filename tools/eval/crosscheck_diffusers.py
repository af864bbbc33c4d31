"""Cross-check models/demo against diffusers/transformers/tokenizers.

The folder is loaded with the libraries' own from_pretrained (tokenizers.Tokenizer,
transformers.LlamaModel, diffusers' HiDreamImageTransformer2DModel, AutoencoderKL and
FlowMatchEulerDiscreteScheduler) and run through diffusers' HiDreamImagePipeline loop with
moedit's text conditioning rule (text/text_conditioning.h), as
tools/make_tiny_model.py's reference does: velocity = -transformer(...), CFG
uncond + g (cond - uncond), scheduler.step, decode latents / scaling_factor + shift_factor.
moedit runs the same prompt from the same initial noise (--init-noise); the two pictures
and final latents are compared. Then diffusers' HiDreamImagePipeline.__call__ itself runs
without CFG (guidance 1) and is compared with that loop and with moedit at guidance 1.
Prints the library versions and the figures; exits 1 when they disagree.

    python3 tools/eval/crosscheck_diffusers.py --moedit build-cpu/moedit --model models/demo
"""
import argparse
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


def load(model):
    """Each component through its library's own loader."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, HiDreamImageTransformer2DModel
    from tokenizers import Tokenizer
    from transformers import LlamaModel
    return {"tok": Tokenizer.from_file(os.path.join(model, "tokenizer", "tokenizer.json")),
            "encoder": LlamaModel.from_pretrained(os.path.join(model, "text_encoder"), dtype=torch.float32).eval(),
            "transformer": HiDreamImageTransformer2DModel.from_pretrained(os.path.join(model, "transformer"),
                                                                          torch_dtype=torch.float32).eval(),
            "vae": AutoencoderKL.from_pretrained(os.path.join(model, "vae"), torch_dtype=torch.float32).eval(),
            "scheduler": FlowMatchEulerDiscreteScheduler.from_pretrained(os.path.join(model, "scheduler"))}


@torch.no_grad()
def decode(vae, latents):
    image = vae.decode(latents[None] / vae.config.scaling_factor + vae.config.shift_factor).sample[0]
    return ((image / 2 + 0.5).clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


@torch.no_grad()
def reference(c, prompt, noise, steps, guidance):
    """HiDreamImagePipeline's denoising loop, with the conditional and unconditional passes apart (their
    unpadded token counts differ, so they cannot share one batch as the pipeline's CFG does)."""
    transformer, scheduler = c["transformer"], c["scheduler"]
    cond, uncond = embeds(c["tok"], c["encoder"], prompt), embeds(c["tok"], c["encoder"], "")
    velocity = lambda x, t, e: -transformer(hidden_states=x, timesteps=t.reshape(1), encoder_hidden_states_t5=e["t5"],
                                            encoder_hidden_states_llama3=e["llama"],
                                            pooled_embeds=e["pooled"]).sample
    scheduler.set_timesteps(steps)
    latents = noise[None].clone()
    for t in scheduler.timesteps:
        v_cond, v_uncond = velocity(latents, t, cond), velocity(latents, t, uncond)
        v = v_uncond + guidance * (v_cond - v_uncond)
        latents = scheduler.step(v, t, latents).prev_sample
    return latents[0]


@torch.no_grad()
def pipeline(c, prompt, noise, steps, size):
    """diffusers' HiDreamImagePipeline itself, without CFG (guidance 1), on moedit's text conditioning. Its four
    text encoders are left out (the embeddings are passed in), and default_sample_size is set to the picture's
    size, since __call__ rescales every request to default_sample_size**2 latent pixels (1024 x 1024 by default)."""
    from diffusers import HiDreamImagePipeline
    pipe = HiDreamImagePipeline(scheduler=c["scheduler"], vae=c["vae"], text_encoder=None, tokenizer=None,
                                text_encoder_2=None, tokenizer_2=None, text_encoder_3=None, tokenizer_3=None,
                                text_encoder_4=None, tokenizer_4=None, transformer=c["transformer"])
    pipe.set_progress_bar_config(disable=True)
    pipe.default_sample_size = size // pipe.vae_scale_factor
    e = embeds(c["tok"], c["encoder"], prompt)
    return pipe(height=size, width=size, num_inference_steps=steps, guidance_scale=1.0, latents=noise[None].clone(),
                prompt_embeds_t5=e["t5"], prompt_embeds_llama3=e["llama"], pooled_prompt_embeds=e["pooled"],
                output_type="latent", return_dict=False)[0][0]


def moedit(args, prompt, noise, guidance):
    with tempfile.TemporaryDirectory() as work:
        save_file({"latents": noise.contiguous()}, os.path.join(work, "noise.safetensors"))
        subprocess.run([args.moedit, "generate", "--model", args.model, "--prompt", prompt, "--height",
                        str(args.size), "--width", str(args.size), "--num-inference-steps", str(args.steps),
                        "--guidance-scale", str(guidance), "--init-noise", os.path.join(work, "noise.safetensors"),
                        "--output-latents", os.path.join(work, "latents.safetensors"), "--output",
                        os.path.join(work, "moedit.png"), "--quiet"], check=True)
        latents = load_file(os.path.join(work, "latents.safetensors"))["latents"]
        pixels = np.asarray(Image.open(os.path.join(work, "moedit.png")).convert("RGB"))
    return latents, pixels


def latent_diff(a, b):
    return (a - b).abs().max().item() / b.abs().max().item()


def pixel_stats(a, b):
    diff = np.abs(a.astype(int) - b.astype(int))
    mse = (diff.astype(np.float64) ** 2).mean()
    psnr = float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
    return diff, psnr


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
    import diffusers
    import tokenizers
    import transformers
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, transformers {transformers.__version__}, "
          f"tokenizers {tokenizers.__version__}")
    torch.set_num_threads(2)
    c = load(args.model)
    channels = c["transformer"].config.in_channels
    noise = torch.randn((channels, args.size // 8, args.size // 8), generator=torch.Generator().manual_seed(args.seed))
    ok = True

    # 1. The pipeline loop with CFG against moedit: latents and pictures.
    ref_latents = reference(c, args.prompt, noise, args.steps, args.guidance)
    ref_pixels = decode(c["vae"], ref_latents)
    latents, pixels = moedit(args, args.prompt, noise, args.guidance)
    if args.save:
        Image.fromarray(ref_pixels).save(args.save)
    d = latent_diff(latents, ref_latents)
    diff, psnr = pixel_stats(pixels, ref_pixels)
    print(f"moedit vs diffusers, \"{args.prompt}\", {args.size}x{args.size}, {args.steps} steps, guidance "
          f"{args.guidance}: final latents max |diff| {d:.2e} of their max; pixels max |diff| {diff.max()}, "
          f"{(diff > 0).mean() * 100:.3f}% of values differ at all, {(diff > 1).mean() * 100:.3f}% by more than 1, "
          f"PSNR {psnr:.1f} dB")
    ok = ok and d < 1e-3 and (diff > 1).mean() < 0.01

    # 2. HiDreamImagePipeline.__call__ itself (guidance 1) against the loop above and against moedit.
    pipe_latents = pipeline(c, args.prompt, noise, args.steps, args.size)
    loop_latents = reference(c, args.prompt, noise, args.steps, 1.0)
    latents1, pixels1 = moedit(args, args.prompt, noise, 1.0)
    d_loop, d_moedit = latent_diff(loop_latents, pipe_latents), latent_diff(latents1, pipe_latents)
    diff1, psnr1 = pixel_stats(pixels1, decode(c["vae"], pipe_latents))
    print(f"HiDreamImagePipeline (guidance 1) vs the loop above: latents max |diff| {d_loop:.2e} of their max; "
          f"vs moedit: latents {d_moedit:.2e}, pixels max |diff| {diff1.max()}, PSNR {psnr1:.1f} dB")
    ok = ok and d_loop < 1e-5 and d_moedit < 1e-3 and (diff1 > 1).mean() < 0.01
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
