"""CPU checks of the training code's three claims, run before spending GPU time:

1. data.tokenize gives the ids of the WordLevel tokenizer.json that export.py writes
   (tokenizers' Lowercase, Whitespace, "[BOS] $A"), on every kind of caption.
2. A right-padded batch in training mode (masked attention, dense MoE, masked pooled mean)
   gives each prompt exactly the transformer output of diffusers' own inference path on that
   prompt alone, for an image, a clip and an in-context edit sequence: padding changes
   nothing, dense MoE is the sparse MoE, and the token layout is diffusers' patchify.
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
import edits  # noqa: E402
import export  # noqa: E402
import models  # noqa: E402
import motion  # noqa: E402
from diffusers import FlowMatchEulerDiscreteScheduler  # noqa: E402


def check_tokenizer():
    tok = export.build_tokenizer()
    rng = random.Random(3)
    texts = [data.training_scene(rng).caption for _ in range(500)]
    texts += [c for c, _ in data.eval_prompts()]
    texts += [motion.clip_scenes(rng, 2)[0] for _ in range(100)]
    texts += [edits.edit_triple(rng)[2] for _ in range(200)]
    texts += ["", "A Red Circle, on a BLUE background!", "a purple elephant", "  two   stars  "]
    for t in texts:
        assert tok.encode(t).ids == data.tokenize(t), (t, tok.encode(t).ids, data.tokenize(t))
    print(f"tokenizer: {len(texts)} texts give the same ids")


def randomize_(module, gen, scale=0.5):
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen) / max(1, p.shape[-1]) ** 0.5)


def sequence_cases(gen, B):
    """(name, tokens [B, S, D], ids [B, S, 3], reference input) of the three tasks' sequences: an
    image (the reference runs diffusers' own patchify of the latents), a 3-frame clip and an
    edit [target | context] (the reference runs the tokens one prompt at a time in eval mode)."""
    p = models.TRANSFORMER["patch_size"]
    latents = torch.randn(B, models.LATENT_CHANNELS, 32, 32, generator=gen)
    small = torch.randn(B * 3, models.LATENT_CHANNELS, 8, 8, generator=gen)
    grid = lambda n: torch.cat([models.grid_ids(B, 4, 4, f, "cpu") for f in range(n)], 1)
    clip = models.tokens(small, p).reshape(B, 3 * 16, -1)
    edit = torch.cat([models.tokens(small[:B], p), models.tokens(small[B:2 * B], p)], 1)
    return [("image", models.tokens(latents, p), models.grid_ids(B, 16, 16, 0, "cpu"), latents),
            ("clip", clip, grid(3), None), ("edit", edit, grid(2), None)]


@torch.no_grad()
def check_padding_equivalence():
    """Training's batched sequence_output (padded prompts, dense MoE) = diffusers' inference on
    each prompt alone, for every task's sequence."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    encoder = models.build_encoder().eval()
    transformer = models.build_transformer().eval()
    randomize_(encoder, gen)
    randomize_(transformer, gen)
    reference = copy.deepcopy(transformer).eval()
    trained = copy.deepcopy(transformer).train()
    context, aux = models.prepare_for_training(trained)
    captions = ["a red circle moving left to right on a blue background", "",
                "a small green star in the top left corner and a pink cross on the right on a gray background"]
    B, p = len(captions), models.TRANSFORMER["patch_size"]
    sigmas = torch.tensor([0.9, 0.5, 0.2])
    ids, mask = data.batch_ids(captions)
    t5, llama, pooled = models.conditioning(encoder, ids, mask)
    for name, seq, img_ids, latents in sequence_cases(gen, B):
        context.key_mask = models.key_mask(mask, seq.shape[1])
        batched = models.sequence_output(trained, seq, img_ids, sigmas, t5, llama, pooled)
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
            assert torch.allclose(t5[b, :n], r_t5[0], atol=1e-5)
            assert torch.allclose(llama[:, b, :n], r_llama[:, 0], atol=1e-5)
            assert torch.allclose(pooled[b], r_pooled[0], atol=1e-5)
            text = dict(timesteps=sigmas[b:b + 1] * 1000, encoder_hidden_states_t5=r_t5,
                        encoder_hidden_states_llama3=r_llama, pooled_embeds=r_pooled)
            if latents is not None:
                ref = models.tokens(reference(hidden_states=latents[b:b + 1], **text).sample, p)
            else:  # eval-mode unpatchify with img_sizes (S, 1) stacks the tokens' patches vertically
                S = seq.shape[1]
                out = reference(hidden_states=seq[b:b + 1], img_ids=img_ids[b:b + 1],
                                img_sizes=torch.tensor([[S, 1]]), hidden_states_masks=torch.ones(1, S), **text).sample
                ref = models.tokens(out, p)
            diff = (ref[0] - batched[b]).abs().max().item()
            worst = max(worst, diff / ref.abs().max().item())
        assert worst < 1e-4, f"{name}: padded batch differs from single prompts: relative {worst:.2e}"
        print(f"padding + dense MoE, {name}: padded batch = unpadded diffusers inference "
              f"(max relative diff {worst:.1e})")


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
