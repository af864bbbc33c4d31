"""Reference fixture for the transformer's video mode (moedit video), computed with diffusers in
float32 on the dit_moe weights.

  tests/fixtures/dit_video/io.safetensors   latents [F=3, 4, 6, 10] (non-square frames), t5 7 tokens,
      llama 5 tokens x 5 layers, pooled, timestep, and the output [3, 4, 6, 10].
  tests/fixtures/dit_video/fixture.json     shapes, routing margin, the generator.

A clip as moedit runs it: diffusers' HiDreamImageTransformer2DModel called with already patchified
hidden_states = [frame 0 tokens | frame 1 tokens | ...] (each frame patchified like an image), img_ids
(f, r, c) for frame f, an all-ones hidden_states_mask (no padding to max_seq) and img_sizes
[[F * pH, pW]], so eval-mode unpatchify returns the frames stacked vertically, split back here.

Rerun: python3 tools/make_video_fixture.py   (torch, diffusers 0.42, safetensors)
"""
import os
import shutil

import torch
from safetensors.torch import save_file

from make_edit_fixture import (FIXTURES, MIN_ROUTING_MARGIN, HiDreamImageTransformer2DModel, image_ids, patchify,
                               routing_margin, setup_determinism)
from fixture_common import write_info

VIDEO = os.path.join(FIXTURES, "dit_video")
FRAMES, HEIGHT, WIDTH = 3, 6, 10


@torch.no_grad()
def transformer_on_clip(model, latents, timestep, t5, llama, pooled):
    """latents [F, C, H, W] -> the transformer's output [F, C, H, W] for the clip as one sequence."""
    p = model.config.patch_size
    frames, c, h, w = latents.shape
    ph, pw = h // p, w // p
    tokens = torch.cat([patchify(model, latents[f]) for f in range(frames)])
    ids = torch.cat([image_ids(ph, pw, f) for f in range(frames)])
    mask = torch.ones(tokens.shape[0])
    out = model(hidden_states=tokens[None], timesteps=timestep.reshape(1), encoder_hidden_states_t5=t5[None],
                encoder_hidden_states_llama3=llama[:, None], pooled_embeds=pooled[None], img_ids=ids[None],
                img_sizes=torch.tensor([[frames * ph, pw]]), hidden_states_masks=mask[None]).sample[0]
    return out.reshape(c, frames, h, w).permute(1, 0, 2, 3).contiguous()


def main():
    setup_determinism()
    model = HiDreamImageTransformer2DModel.from_pretrained(os.path.join(FIXTURES, "dit_moe", "transformer"),
                                                           torch_dtype=torch.float32).eval()
    cfg = model.config
    for attempt in range(100):
        gen = torch.Generator().manual_seed(8765 + attempt)
        latents = torch.randn(FRAMES, cfg.in_channels, HEIGHT, WIDTH, generator=gen)
        t5 = torch.randn(7, cfg.caption_channels[0], generator=gen)
        llama = torch.randn(5, 5, cfg.caption_channels[1], generator=gen)
        pooled = torch.randn(cfg.text_emb_dim, generator=gen)
        timestep = torch.tensor([0.41 * 1000])
        out, margin = routing_margin(model, lambda: transformer_on_clip(model, latents, timestep, t5, llama, pooled))
        if margin >= MIN_ROUTING_MARGIN:
            break
        print(f"  dit_video: input seed {8765 + attempt} rejected (routing margin {margin:.2e})")
    else:
        raise RuntimeError("no input seed with clean routing")
    if os.path.isdir(VIDEO):
        shutil.rmtree(VIDEO)
    os.makedirs(VIDEO)
    tensors = {"latents": latents, "timestep": timestep, "prompt_embeds_t5": t5, "prompt_embeds_llama3": llama,
               "pooled_prompt_embeds": pooled, "output": out}
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(VIDEO, "io.safetensors"))
    info = {"transformer": "tests/fixtures/dit_moe/transformer", "frames": FRAMES, "routing_min_margin": margin,
            "max_seq": model.max_seq, "shapes": {k: list(v.shape) for k, v in tensors.items()},
            "generator": "tools/make_video_fixture.py"}
    write_info(VIDEO, info)
    print(f"dit_video: {FRAMES} frames of {HEIGHT}x{WIDTH}, {FRAMES * (HEIGHT // 2) * (WIDTH // 2)} tokens "
          f"(max_seq {model.max_seq}); output max {out.abs().max():.3f}; routing margin {margin:.2e}")


if __name__ == "__main__":
    main()
