"""Build models/tiny-random, moedit's smallest complete model, and the
end-to-end reference that tests/test_pipeline_matches_diffusers.c checks.

The model is in diffusers format with every component moedit's text-to-image
pipeline uses, all with random weights (so its pictures are noise-like; the
trained demo model replaces it as the README's default later):
    tokenizer/tokenizer.json       WordLevel (the vocabulary of the shape scenes)
    text_encoder/                  transformers LlamaModel, 2 layers, hidden 32
    transformer/                   HiDreamImageTransformer2DModel, 4 experts top-2
    vae/                           AutoencoderKL, factor 8, 4 latent channels
    scheduler/                     FlowMatchEulerDiscreteScheduler, shift 3
Weights are rounded to bfloat16 values and stored as bfloat16.

The reference (tests/fixtures/pipeline_tiny/) is the flow-matching loop of
diffusers' HiDreamImagePipeline run with these modules in float32: moedit's
text conditioning rule (text/text_conditioning.h) in place of HiDream's
four encoders, `-transformer(...)` as the velocity, CFG, Euler steps, then
VAE decode and diffusers' postprocessing. It stores the initial noise, the
prompt embeddings (as a --prompt-embeds file), the final latents and the
image's pixels.

Rerun: python3 tools/make_tiny_model.py   (needs torch, diffusers, transformers, tokenizers)
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_dit_fixtures as dit_fx  # noqa: E402
import make_text_fixtures as text_fx  # noqa: E402
import make_vae_fixtures as vae_fx  # noqa: E402
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, HiDreamImageTransformer2DModel  # noqa: E402
from transformers import LlamaConfig, LlamaModel  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "tiny-random")
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "pipeline_tiny")
SEED = 77
PROMPT = "a red circle on a blue background"
NEGATIVE = ""
HEIGHT, WIDTH, STEPS, GUIDANCE = 48, 64, 4, 3.0

ENCODER = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=512,
               bos_token_id=1, eos_token_id=2, pad_token_id=3)
TRANSFORMER = dict(patch_size=2, in_channels=4, out_channels=4, num_layers=1, num_single_layers=1,
                   attention_head_dim=16, num_attention_heads=2, caption_channels=[32, 32], text_emb_dim=32,
                   num_routed_experts=4, num_activated_experts=2, axes_dims_rope=[4, 6, 6],
                   max_resolution=[8, 8], llama_layers=[0, 1])
VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[16, 16, 16, 16],
           down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
           layers_per_block=1, norm_num_groups=8, scaling_factor=0.5, shift_factor=0.1)


def bf16(model):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))


def save(model, path):
    model.to(torch.bfloat16).save_pretrained(path, safe_serialization=True)
    model.to(torch.float32)


def build_modules():
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    tok = text_fx.tokenizer_bos()
    encoder = LlamaModel(LlamaConfig(vocab_size=len(text_fx.vocab()), attn_implementation="eager", **ENCODER)).eval()
    text_fx.reinit_(encoder, gen)
    transformer = HiDreamImageTransformer2DModel(**TRANSFORMER).eval()
    dit_fx.reinit_(transformer, gen)
    vae = AutoencoderKL(**VAE).eval()
    vae_fx.reinit_(vae, gen)
    for m in (encoder, transformer, vae):
        bf16(m)
    return tok, encoder, transformer, vae


@torch.no_grad()
def embeds(tok, encoder, text):
    ids = tok.encode(text).ids
    return text_fx.conditioning(text_fx.encode(encoder, ids))


@torch.no_grad()
def velocity(transformer, latents, t, e):
    out = transformer(hidden_states=latents[None], timesteps=t.reshape(1),
                      encoder_hidden_states_t5=e["prompt_embeds_t5"][None],
                      encoder_hidden_states_llama3=e["prompt_embeds_llama3"][:, None],
                      pooled_embeds=e["pooled_prompt_embeds"][None]).sample[0]
    return -out


@torch.no_grad()
def reference(tok, encoder, transformer, vae, scheduler, noise):
    cond, uncond = embeds(tok, encoder, PROMPT), embeds(tok, encoder, NEGATIVE)
    scheduler.set_timesteps(STEPS)
    latents = noise.clone()
    for t in scheduler.timesteps:
        v_cond = velocity(transformer, latents, t, cond)
        v_uncond = velocity(transformer, latents, t, uncond)
        v = v_uncond + GUIDANCE * (v_cond - v_uncond)
        latents = scheduler.step(v[None], t, latents[None]).prev_sample[0]
    image = vae.decode((latents / VAE["scaling_factor"] + VAE["shift_factor"])[None]).sample[0]
    pixels = ((image / 2 + 0.5).clamp(0, 1).permute(1, 2, 0).numpy() * 255).round()
    return cond, uncond, latents, torch.from_numpy(pixels).permute(2, 0, 1).contiguous().float()


def write_model(tok, encoder, transformer, vae, scheduler):
    if os.path.isdir(MODEL):
        shutil.rmtree(MODEL)
    os.makedirs(MODEL)
    text_fx.write_tokenizer(tok, os.path.join(MODEL, "tokenizer", "tokenizer.json"))
    save(encoder, os.path.join(MODEL, "text_encoder"))
    save(transformer, os.path.join(MODEL, "transformer"))
    save(vae, os.path.join(MODEL, "vae"))
    scheduler.save_pretrained(os.path.join(MODEL, "scheduler"))
    index = {"_class_name": "MoeditTextToImagePipeline", "_comment": "moedit tiny random model: noise-like pictures",
             "transformer": ["diffusers", "HiDreamImageTransformer2DModel"], "vae": ["diffusers", "AutoencoderKL"],
             "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
             "text_encoder": ["transformers", "LlamaModel"], "tokenizer": ["tokenizers", "Tokenizer"]}
    with open(os.path.join(MODEL, "model_index.json"), "w") as f:
        json.dump(index, f, indent=2)


def main():
    text_fx.setup_determinism()
    tok, encoder, transformer, vae = build_modules()
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    write_model(tok, encoder, transformer, vae, scheduler)
    noise = torch.randn((4, HEIGHT // 8, WIDTH // 8), generator=torch.Generator().manual_seed(SEED + 1))
    cond, uncond, latents, pixels = reference(tok, encoder, transformer, vae, scheduler, noise)
    assert torch.isfinite(latents).all()
    if os.path.isdir(FIXTURE):
        shutil.rmtree(FIXTURE)
    os.makedirs(FIXTURE)
    save_file({"latents": noise.contiguous(), "final_latents": latents.contiguous(), "pixels": pixels},
              os.path.join(FIXTURE, "io.safetensors"))
    prompt_embeds = {k: v.contiguous() for k, v in cond.items()}
    prompt_embeds.update({"negative_" + k: v.contiguous() for k, v in uncond.items()})
    save_file(prompt_embeds, os.path.join(FIXTURE, "prompt_embeds.safetensors"))
    with open(os.path.join(FIXTURE, "fixture.json"), "w") as f:
        json.dump({"prompt": PROMPT, "negative_prompt": NEGATIVE, "height": HEIGHT, "width": WIDTH, "steps": STEPS,
                   "guidance_scale": GUIDANCE, "seed": SEED}, f, indent=2)
    size = sum(os.path.getsize(os.path.join(d, n)) for root in (MODEL, FIXTURE) for d, _, ns in os.walk(root) for n in ns)
    print(f"wrote {MODEL} and {FIXTURE}: {size / 1e6:.2f} MB; final latents max {latents.abs().max():.3f}")


if __name__ == "__main__":
    sys.exit(main())
