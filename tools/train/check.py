"""CPU checks of the training code's three claims, run before spending GPU time:

1. data.tokenize gives the ids of the WordLevel tokenizer.json that export.py writes
   (tokenizers' Lowercase, Whitespace, "[BOS] $A"), on every kind of caption.
2. A right-padded batch in training mode (masked attention, dense MoE, masked pooled mean)
   gives each prompt exactly the transformer output of diffusers' own inference path on that
   prompt alone: padding changes nothing, and dense MoE is the sparse MoE.
3. The flow-matching sign: with the ideal output x0 - noise, velocity = -output and
   FlowMatchEulerDiscreteScheduler's steps carry pure noise to x0.

    python3 tools/train/check.py
"""
import copy
import os
import random
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import export  # noqa: E402
import models  # noqa: E402
from diffusers import FlowMatchEulerDiscreteScheduler  # noqa: E402


def check_tokenizer():
    tok = export.build_tokenizer()
    rng = random.Random(3)
    texts = [data.training_scene(rng).caption for _ in range(500)]
    texts += [c for c, _ in data.eval_prompts()]
    texts += ["", "A Red Circle, on a BLUE background!", "a purple elephant", "  two   stars  "]
    for t in texts:
        assert tok.encode(t).ids == data.tokenize(t), (t, tok.encode(t).ids, data.tokenize(t))
    print(f"tokenizer: {len(texts)} texts give the same ids")


def randomize_(module, gen, scale=0.5):
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen) / max(1, p.shape[-1]) ** 0.5)


@torch.no_grad()
def check_padding_equivalence():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    encoder = models.build_encoder().eval()
    transformer = models.build_transformer().eval()
    randomize_(encoder, gen)
    randomize_(transformer, gen)
    reference = copy.deepcopy(transformer).eval()
    trained = copy.deepcopy(transformer).train()
    context, aux = models.prepare_for_training(trained)
    captions = ["a red circle on a blue background", "",
                "a small green star in the top left corner and a pink cross on the right on a gray background"]
    B = len(captions)
    latents = torch.randn(B, models.LATENT_CHANNELS, 32, 32, generator=gen)
    sigmas = torch.tensor([0.9, 0.5, 0.2])
    ids, mask = data.batch_ids(captions)
    t5, llama, pooled = models.conditioning(encoder, ids, mask)
    context.key_mask = models.key_mask(mask, 256)
    batched = models.transformer_output(trained, latents, sigmas, t5, llama, pooled)
    context.key_mask = None
    assert aux.take() is not None, "no balance loss collected"
    worst = 0.0
    for b, caption in enumerate(captions):
        one = torch.tensor([data.tokenize(caption)])
        out = encoder(input_ids=one, output_hidden_states=True)
        hs = torch.stack(out.hidden_states, 0)[:, 0]
        assert torch.equal(hs[-1], out.last_hidden_state[0])
        r_t5, r_llama, r_pooled = hs[-1][None], hs[1:][:, None], hs[-1].mean(0)[None]
        n = one.shape[1]
        assert torch.allclose(t5[b, :n], r_t5[0], atol=1e-5) and torch.allclose(llama[:, b, :n], r_llama[:, 0], atol=1e-5)
        assert torch.allclose(pooled[b], r_pooled[0], atol=1e-5)
        ref = reference(hidden_states=latents[b:b + 1], timesteps=sigmas[b:b + 1] * 1000, encoder_hidden_states_t5=r_t5,
                        encoder_hidden_states_llama3=r_llama, pooled_embeds=r_pooled).sample
        diff = (ref[0] - batched[b]).abs().max().item()
        worst = max(worst, diff / ref.abs().max().item())
    assert worst < 1e-4, f"padded batch differs from single prompts: relative {worst:.2e}"
    print(f"padding + dense MoE: padded batch = unpadded diffusers inference (max relative diff {worst:.1e})")


def check_flow_sign():
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(1, 4, 8, 8, generator=gen)
    noise = torch.randn(1, 4, 8, 8, generator=gen)
    sched = FlowMatchEulerDiscreteScheduler(shift=models.SCHEDULER_SHIFT)
    sched.set_timesteps(6)
    x = noise.clone()
    for t in sched.timesteps:
        sigma = t / 1000
        implied_noise = (x - (1 - sigma) * x0) / sigma
        output = x0 - implied_noise          # what training teaches the transformer
        x = sched.step(-output, t, x).prev_sample  # velocity = -output, as HiDream and moedit
    err = (x - x0).abs().max().item()
    assert err < 1e-4, err
    print(f"flow sign: the ideal output x0 - noise denoises to x0 (max error {err:.1e})")


if __name__ == "__main__":
    check_tokenizer()
    check_flow_sign()
    check_padding_equivalence()
    print("all checks passed")
