"""Does the demo model's denoiser use the shape word? (issue 35's diagnosis, step 2b)

On single-object training scenes (tools/train/data.py, no held-out triple), the flow-matching
loss of train.py (| transformer(x_t, t, text) - (x0 - noise) |^2, the same noise and sigma for
every caption) is measured with the scene's own caption and with captions that are wrong in
one word: another shape, another object color, another background, and the empty caption.
A word the model uses raises the loss when it is wrong; a word it ignores does not. The
loss is reported per sigma (the noise level the sampler passes through). With
--edge-token-weight W the loss is train.py's weighted one (edge_token_weights): how much more
of it a wrong shape word would cost under that weighting.

    python3 tools/train/from_model.py --model models/demo --out /tmp/v1ckpt
    python3 tools/eval/diagnose_caption.py --ckpt /tmp/v1ckpt --count 48 --seed 35
"""
import argparse
import os
import random
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "train"))
import data  # noqa: E402
import models  # noqa: E402
import train  # noqa: E402


def caption(color, shape, bg):
    return f"{data.article(color)} {color} {shape} on {data.article(bg)} {bg} background"


def variants(rng, o, bg):
    """The true caption and the one-word-wrong ones, keyed by what is wrong."""
    shape = rng.choice([s for s in data.SHAPES if s != o["shape"]])
    color = rng.choice([c for c in data.COLOR_NAMES if c not in (o["color"], bg)])
    other_bg = rng.choice([c for c in data.COLOR_NAMES if c not in (o["color"], bg)])
    return {"true": caption(o["color"], o["shape"], bg), "shape": caption(o["color"], shape, bg),
            "color": caption(color, o["shape"], bg), "background": caption(o["color"], o["shape"], other_bg),
            "empty": ""}


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", required=True, help="a training checkpoint (from_model.py makes one of a model)")
    ap.add_argument("--count", type=int, default=48)
    ap.add_argument("--seed", type=int, default=35)
    ap.add_argument("--sigmas", default="0.3,0.5,0.7,0.9")
    ap.add_argument("--edge-token-weight", type=float, default=0.0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    state = train.read_state(args.ckpt)
    shift, scale = state["vae"]["shift_factor"], state["vae"]["scaling_factor"]
    vae = train.load_vae(args.ckpt, torch.device("cpu"))
    net = train.Denoiser()
    net.load_state_dict(models.fit_vocab({k: v.float() for k, v in train.load_sharded(args.ckpt, "ema").items()}))
    net.train()  # sequence_output reads the training-mode output layout; no module has dropout
    context, aux = models.prepare_for_training(net.transformer)
    scenes = []
    while len(scenes) < args.count:
        s = data.training_scene(rng)
        if len(s.objects) == 1:
            scenes.append(s)
    x = data.render(scenes, models.IMAGE_SIZE, seed=args.seed)
    patch = net.transformer.config.patch_size
    x0, (h, w) = train.encoded_tokens(vae, x, shift, scale, patch)
    ids = models.grid_ids(len(scenes), h, w, 0, x.device)
    token_px = patch * 2 ** (len(vae.config.block_out_channels) - 1)
    weights = train.edge_token_weights(x, token_px, args.edge_token_weight) if args.edge_token_weight else None
    caps = [variants(rng, s.objects[0], s.bg) for s in scenes]
    kinds = list(caps[0])
    # The text encoder's side: how far each wrong caption's conditioning (models.conditioning:
    # llama3 layers, t5 = the last hidden state, pooled) moves from the true one's, relative.
    cond = {k: models.conditioning(net.text_encoder, *data.batch_ids([c[k] for c in caps])) for k in kinds}
    # (one template: the true and wrong captions have the same number of tokens)
    moved = lambda k, i: (cond[k][i] - cond["true"][i]).norm() / cond["true"][i].norm()
    print("text conditioning moved by a wrong word (relative L2 of the last hidden state / pooled): "
          + ", ".join(f"{k} {moved(k, 0):.3f} / {moved(k, 2):.3f}" for k in ("shape", "color", "background")))
    print(f"{len(scenes)} single-object training scenes, seed {args.seed}; flow-matching MSE by caption"
          + (f" (tokens weighed by --edge-token-weight {args.edge_token_weight})" if weights is not None else ""))
    print("sigma  " + "  ".join(f"{k:>10s}" for k in kinds) + "   (wrong - true) / true: " + " ".join(kinds[1:]))
    for sigma in map(float, args.sigmas.split(",")):
        noise = torch.randn_like(x0)
        sigmas = torch.full((len(scenes),), sigma)
        mse = {}
        for k in kinds:
            text_ids, text_mask = data.batch_ids([c[k] for c in caps])
            mse[k] = train.flow_loss(net, context, aux, x0, None, ids, text_ids, text_mask, sigmas, noise,
                                     weights)[0].item()
        rel = " ".join(f"{(mse[k] - mse['true']) / mse['true']:+.3f}" for k in kinds[1:])
        print(f"{sigma:.2f}   " + "  ".join(f"{mse[k]:10.5f}" for k in kinds) + "   " + rel, flush=True)


if __name__ == "__main__":
    main()
