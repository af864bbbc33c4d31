"""Train the demo model in resumable, time-boxed chunks (PyTorch; GPU, or CPU for a smoke test).

Stages (--stage):
  vae   AutoencoderKL on rendered scenes: L1 + MSE reconstruction + 1e-4 x mean KL. Then the
        latent statistics of the bf16 VAE's posterior means give shift_factor (their mean) and
        scaling_factor (1 / their std), so stored latents (mean - shift) * scale have unit std.
  dit   the VAE frozen; the text encoder and transformer trained jointly with rectified flow:
            x_t = (1 - sigma) x0 + sigma noise,   t = 1000 sigma,
            sigma = shift(sigmoid(N(0, 1))) with the scheduler's shift,
            loss = | transformer(x_t, t, text) - (x0 - noise) |^2  (+ the gates' balance loss);
        --edge-token-weight W weighs each token by 1 + W x its share of the picture's edges
        (edge_token_weights, mean 1 a picture): the shape lives on the outline's few tokens.
        The target is x0 - noise because diffusers' HiDreamImagePipeline (and moedit) use
        velocity = -transformer output, and FlowMatchEulerDiscreteScheduler.step moves
        x += (sigma_next - sigma) * velocity along dx/dsigma = noise - x0.
        Captions are dropped (empty prompt) 10% of the time for classifier-free guidance.
        --tasks picks what a step trains on, one batch of each, their losses summed; every
        batch is a token sequence as moedit runs it (models.sequence_output):
          image  scenes (data.py) at 256 x 256, RoPE ids (0, row, col)
          clip   clips of moving shapes (motion.py), --clip-frames frames at --clip-size as one
                 sequence, frame f with ids (f, row, col): moedit video
          edit   edit triples (edits.py): the noisy result's tokens, then the clean source's with
                 ids (1, row, col) as in-context tokens, the loss on the result's: moedit edit
                 --edit-mode context
  decoder  only the decoder fine-tune below (--decoder-seconds, default --seconds), from --ckpt.
  --edge-weight W adds W x the L1 distance of the pictures' finite differences (edge_loss) to the
        vae and decoder reconstruction losses: a sharp outline costs the decoder more than its
        few pixels weigh in L1 + MSE. --vae-resume starts the vae stage from --ckpt's VAE (a VAE
        trained over several chunks) instead of random weights. --vae-from DIR takes the VAE and
        its latent statistics from another checkpoint (a retrained VAE) while the text encoder
        and transformer resume from --ckpt (e.g. the shipped model, rebuilt by from_model.py).
  all   vae (when the checkpoint has none) then dit, sharing the time budget. With
        --decoder-seconds, a resumed chunk first fine-tunes the VAE decoder alone (encoder
        frozen, so the latents and the transformer's target stay the same).

Each run trains for at most --seconds of wall time (plus the save), resuming from --ckpt
and writing the new checkpoint to --out (both may be the same folder):
  vae.safetensors                 bf16 VAE; metadata: shift_factor, scaling_factor
  ema-N.safetensors, raw-N.safetensors
                                  bf16 text encoder + transformer ("text_encoder.*",
                                  "transformer.*"): the EMA (exported) and the trained weights,
                                  in shards of at most 15 MiB
  state.json                      steps, seconds, seeds, loss curve
Optimizer moments are not kept (they would not fit what a GPU chunk can return): a resumed
chunk restarts AdamW with a short warm-up. Without raw-* shards (to carry less), it goes on
from the EMA weights.

    python3 tools/train/train.py --stage all --ckpt .train/ckpt --out .train/ckpt --seconds 540
"""
import argparse
import json
import math
import os
import random
import sys
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import edits  # noqa: E402
import models  # noqa: E402
import motion  # noqa: E402

SHARD_BYTES = 15 << 20


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- checkpoints

def save_atomic(tensors, path, metadata=None):
    tmp = path + ".tmp"
    save_file(tensors, tmp, metadata=metadata)
    os.replace(tmp, path)


def save_sharded(state, out, prefix):
    """bf16 copies of state in shards prefix-1.safetensors ... of at most SHARD_BYTES."""
    shards, current, size = [], {}, 0
    for name in sorted(state):
        t = state[name].detach().to("cpu", torch.bfloat16).contiguous()
        if current and size + t.numel() * 2 > SHARD_BYTES:
            shards.append(current)
            current, size = {}, 0
        current[name] = t
        size += t.numel() * 2
    shards.append(current)
    for f in os.listdir(out):
        if f.startswith(prefix + "-") and f.endswith(".safetensors"):
            os.remove(os.path.join(out, f))
    for i, shard in enumerate(shards):
        save_atomic(shard, os.path.join(out, f"{prefix}-{i + 1}.safetensors"))


def load_sharded(folder, prefix):
    files = sorted(f for f in os.listdir(folder) if f.startswith(prefix + "-") and f.endswith(".safetensors"))
    state = {}
    for f in files:
        state.update(load_file(os.path.join(folder, f)))
    return state


def read_state(folder):
    path = os.path.join(folder, "state.json")
    if folder and os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {"vae": None, "dit": None}


def write_state(out, state):
    tmp = os.path.join(out, "state.json.tmp")
    with open(tmp, "w") as f:
        json.dump(state, f, indent=1)
    os.replace(tmp, os.path.join(out, "state.json"))


def round_bf16_(module):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.to(torch.bfloat16).to(p.dtype))


# ---------------------------------------------------------------- data

def scene_batch(rng, batch, drop=0.0):
    scenes = [data.training_scene(rng) for _ in range(batch)]
    captions = ["" if rng.random() < drop else s.caption for s in scenes]
    return scenes, captions


def lr_at(step, seconds_done, args, warmup):
    warm = min(1.0, (step + 1) / warmup)
    frac = min(1.0, seconds_done / max(args.total_seconds, 1.0))
    return args.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


# ---------------------------------------------------------------- VAE

def edge_loss(y, x):
    """Mean L1 distance of the horizontal and vertical finite differences of y and x."""
    dx = lambda t: t[..., :, 1:] - t[..., :, :-1]
    dy = lambda t: t[..., 1:, :] - t[..., :-1, :]
    return (dx(y) - dx(x)).abs().mean() + (dy(y) - dy(x)).abs().mean()


def reconstruction_loss(y, x, args):
    """L1 + MSE, plus --edge-weight x edge_loss."""
    rec = (y - x).abs().mean() + (y - x).pow(2).mean()
    return rec + args.edge_weight * edge_loss(y, x) if args.edge_weight else rec


def train_vae(args, device, deadline, state, init=None):
    """From random weights, or from init (a VAE trained before: --vae-resume) with a new seed."""
    previous = (state.get("vae") or {}) if init is not None else {}
    seed = args.seed + previous.get("steps", 0)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    vae = (init if init is not None else models.build_vae()).to(device).train().requires_grad_(True)
    if device.type == "cuda":
        vae = vae.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, betas=(0.9, 0.99), weight_decay=0.0)
    size, batch = args.vae_size, args.vae_batch
    curve, step, start = [], 0, time.time()
    while time.time() < deadline or step == 0:
        frac = min(1.0, (time.time() - start) / max(deadline - start, 1e-3))
        for g in opt.param_groups:
            g["lr"] = args.vae_lr * min(1.0, (step + 1) / 100) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        scenes, _ = scene_batch(rng, batch)
        x = data.render(scenes, size, device, seed=rng.randrange(1 << 30))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            post = vae.encode(x).latent_dist
            y = vae.decode(post.sample()).sample.float()
        rec = reconstruction_loss(y, x, args)
        kl = post.kl().float().mean() / post.mean[0].numel()
        loss = rec + args.vae_kl * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        step += 1
        if step % args.log_every == 0 or step == 1:
            psnr = 10 * math.log10(4.0 / max((y.detach() - x).pow(2).mean().item(), 1e-10))
            curve.append([step, round(time.time() - start, 1), round(rec.item(), 5), round(kl.item(), 4),
                          round(psnr, 2)])
            log(f"vae step {step} rec {rec.item():.5f} kl {kl.item():.3f} psnr {psnr:.2f} dB")
    vae.eval()
    round_bf16_(vae)
    shift, scale = latent_stats(vae, device, rng, size)
    state["vae"] = {"steps": previous.get("steps", 0) + step, "seconds": round(time.time() - start, 1),
                    "batch": batch, "size": size, "lr": args.vae_lr, "kl_weight": args.vae_kl,
                    "edge_weight": args.edge_weight, "seed": seed, "curve": curve,
                    "shift_factor": shift, "scaling_factor": scale,
                    "chunks": previous.get("chunks", []) + [{"from_step": previous.get("steps", 0), "steps": step}]}
    # New latents: a DiT trained on the old ones does not carry over as a resumable state.
    state["dit"] = None
    log(f"vae done: {step} steps; shift_factor {shift:.5f} scaling_factor {scale:.5f}")
    return vae


@torch.no_grad()
def latent_stats(vae, device, rng, size, batches=8, batch=32):
    values = []
    for _ in range(batches):
        scenes, _ = scene_batch(rng, batch)
        x = data.render(scenes, size, device, seed=rng.randrange(1 << 30))
        values.append(vae.encode(x).latent_dist.mean.float().flatten())
    v = torch.cat(values)
    return round(v.mean().item(), 5), round(1.0 / v.std().item(), 5)


def save_vae(vae, out, state):
    meta = {"shift_factor": str(state["vae"]["shift_factor"]), "scaling_factor": str(state["vae"]["scaling_factor"])}
    tensors = {k: v.detach().to("cpu", torch.bfloat16).contiguous() for k, v in vae.state_dict().items()}
    save_atomic(tensors, os.path.join(out, "vae.safetensors"), meta)


def load_vae(folder, device):
    vae = models.build_vae()
    vae.load_state_dict({k: v.float() for k, v in load_file(os.path.join(folder, "vae.safetensors")).items()})
    return vae.to(device).eval().requires_grad_(False)


def finetune_decoder(args, vae, device, deadline, state):
    """Decoder (and post_quant_conv) only, the encoder frozen: the latents the transformer
    learns stay exactly the same, only their decoding improves. Decodes posterior means,
    half of them with a little Gaussian noise (5% of the latent std) for robustness."""
    rng = random.Random(args.seed + 77)
    torch.manual_seed(args.seed + 77)
    vae.train().requires_grad_(False)
    if device.type == "cuda":
        vae = vae.to(memory_format=torch.channels_last)
    trainable = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    for p in trainable:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(trainable, lr=args.decoder_lr, betas=(0.9, 0.99), weight_decay=0.0)
    noise_std = 0.05 / state["vae"]["scaling_factor"]
    curve, step, start = [], 0, time.time()
    while time.time() < deadline or step == 0:
        frac = min(1.0, (time.time() - start) / max(deadline - start, 1e-3))
        for g in opt.param_groups:
            g["lr"] = args.decoder_lr * min(1.0, (step + 1) / 50) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        scenes, _ = scene_batch(rng, args.vae_batch)
        x = data.render(scenes, args.vae_size, device, seed=rng.randrange(1 << 30))
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            z = vae.encode(x).latent_dist.mean.float()
        noisy = (torch.rand(z.shape[0], 1, 1, 1, device=device) < 0.5).float()
        z = z + noisy * noise_std * torch.randn_like(z)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            y = vae.decode(z).sample.float()
        rec = reconstruction_loss(y, x, args)
        opt.zero_grad(set_to_none=True)
        rec.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        step += 1
        if step % args.log_every == 0 or step == 1:
            psnr = 10 * math.log10(4.0 / max((y.detach() - x).pow(2).mean().item(), 1e-10))
            curve.append([step, round(time.time() - start, 1), round(rec.item(), 5), round(psnr, 2)])
            log(f"decoder step {step} rec {rec.item():.5f} psnr {psnr:.2f} dB")
    vae.eval().requires_grad_(False)
    round_bf16_(vae)
    previous = state["vae"].get("decoder_finetune", [])
    state["vae"]["decoder_finetune"] = previous + [{"steps": step, "seconds": round(time.time() - start, 1),
                                                    "batch": args.vae_batch, "lr": args.decoder_lr,
                                                    "edge_weight": args.edge_weight,
                                                    "latent_noise": 0.05, "curve": curve}]
    log(f"decoder fine-tune done: {step} steps")
    return vae


# ---------------------------------------------------------------- text encoder + transformer

class Denoiser(torch.nn.Module):
    """The text encoder and the transformer as one module (one optimizer, one EMA)."""

    def __init__(self):
        super().__init__()
        self.text_encoder = models.build_encoder()
        self.transformer = models.build_transformer()


@torch.no_grad()
def encode_latents(vae, x, shift, scale):
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=x.device.type == "cuda"):
        mean = vae.encode(x).latent_dist.mean
    return (mean.float() - shift) * scale


def edge_token_weights(pictures, token_px, weight):
    """Per-token loss weights [N, S] of pictures [N, 3, H, W] for --edge-token-weight: 1 + weight x
    the token's share of the picture's edges (finite differences pooled over the token's
    token_px x token_px pixels, over their mean), then scaled to mean 1 per picture. A shape
    differs from another only along its outline, a few tokens the plain MSE weighs like the
    flat background."""
    g = (pictures[..., :, 1:] - pictures[..., :, :-1]).abs().sum(1)[..., :-1, :] + \
        (pictures[..., 1:, :] - pictures[..., :-1, :]).abs().sum(1)[..., :, :-1]
    g = F.pad(g, (0, 1, 0, 1))
    pooled = F.avg_pool2d(g[:, None], token_px).flatten(1)
    w = 1 + weight * pooled / pooled.mean(1, keepdim=True).clamp_min(1e-6)
    return w / w.mean(1, keepdim=True)


def flow_loss(net, context, aux, x0, cond, ids, text_ids, text_mask, sigmas, noise, weights=None):
    """Flow-matching loss on a token sequence: x0 [B, S, D] the clean target tokens (an image,
    or a clip's frames one after another), cond [B, Sc, D] clean tokens appended after them (an
    edit's source picture) or None, ids [B, S + Sc, 3] their RoPE ids; weights [B, S] per-token
    loss weights (edge_token_weights) or None."""
    s = sigmas[:, None, None]
    xt = (1 - s) * x0 + s * noise
    seq = xt if cond is None else torch.cat([xt, cond], 1)
    t5, llama, pooled = models.conditioning(net.text_encoder, text_ids, text_mask)
    context.key_mask = models.key_mask(text_mask, seq.shape[1])
    pred = models.sequence_output(net.transformer, seq, ids, sigmas, t5, llama, pooled)[:, :x0.shape[1]]
    context.key_mask = None
    if weights is None:
        mse = F.mse_loss(pred.float(), (x0 - noise).float())
    else:
        mse = ((pred.float() - (x0 - noise).float()).pow(2).mean(-1) * weights).mean()
    return mse, aux.take()


def encoded_tokens(vae, pictures, shift, scale, patch):
    """Pictures [N, 3, H, W] -> scaled latent tokens [N, S, D] and their grid (rows, cols)."""
    z = encode_latents(vae, pictures, shift, scale)
    return models.tokens(z, patch), (z.shape[2] // patch, z.shape[3] // patch)


def task_batch(task, args, rng, vae, shift, scale, patch, device):
    """One batch of a task as (x0 tokens, cond tokens or None, ids, captions, the target pictures
    [B x frames, 3, H, W] in x0's token order):
       image  scenes at models.IMAGE_SIZE, ids (0, r, c)
       clip   --clip-frames frames at --clip-size as one sequence, ids (f, r, c)
       edit   result tokens, then the source's as context, ids (0, r, c) then (1, r, c)"""
    if task == "image":
        scenes, captions = scene_batch(rng, args.batch, drop=args.caption_drop)
        x = data.render(scenes, models.IMAGE_SIZE, device, seed=rng.randrange(1 << 30))
        x0, (h, w) = encoded_tokens(vae, x, shift, scale, patch)
        return x0, None, models.grid_ids(x0.shape[0], h, w, 0, device), captions, x
    if task == "clip":
        B, frames = args.clip_batch, args.clip_frames
        clips, captions = motion.clip_batch(rng, B, frames, args.clip_size, device, args.caption_drop)
        x0, (h, w) = encoded_tokens(vae, clips.flatten(0, 1), shift, scale, patch)
        ids = torch.cat([models.grid_ids(B, h, w, f, device) for f in range(frames)], 1)
        return x0.reshape(B, frames * h * w, -1), None, ids, captions, clips.flatten(0, 1)
    B = args.edit_batch
    sources, results, captions = edits.edit_batch(rng, B, models.IMAGE_SIZE, device, args.caption_drop)
    x0, (h, w) = encoded_tokens(vae, results, shift, scale, patch)
    cond, _ = encoded_tokens(vae, sources, shift, scale, patch)
    ids = torch.cat([models.grid_ids(B, h, w, 0, device), models.grid_ids(B, h, w, 1, device)], 1)
    return x0, cond, ids, captions, results


def task_loss(task, args, rng, net, context, aux, vae, shift, scale, device):
    """(flow-matching mse, gate balance loss) of one batch of the task."""
    patch = net.transformer.config.patch_size
    x0, cond, ids, captions, pictures = task_batch(task, args, rng, vae, shift, scale, patch, device)
    weights = None
    if args.edge_token_weight:
        token_px = patch * 2 ** (len(vae.config.block_out_channels) - 1)
        weights = edge_token_weights(pictures.float(), token_px, args.edge_token_weight).reshape(x0.shape[0], -1)
    text_ids, text_mask = data.batch_ids(captions, device)
    noise = torch.randn_like(x0)
    sigmas = models.shifted(torch.sigmoid(torch.randn(x0.shape[0], device=device)), models.SCHEDULER_SHIFT)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        return flow_loss(net, context, aux, x0, cond, ids, text_ids, text_mask, sigmas, noise, weights)


def train_dit(args, device, deadline, state, vae, ckpt):
    shift, scale = state["vae"]["shift_factor"], state["vae"]["scaling_factor"]
    prev = state.get("dit") or {"steps": 0, "seconds": 0.0, "curve": [], "chunks": []}
    torch.manual_seed(args.seed + prev["steps"])
    rng = random.Random(args.seed * 1000003 + prev["steps"])
    net = Denoiser()
    ema = Denoiser()
    if prev["steps"] > 0:
        ema_state = models.fit_vocab({k: v.float() for k, v in load_sharded(ckpt, "ema").items()})
        raw_state = models.fit_vocab({k: v.float() for k, v in load_sharded(ckpt, "raw").items()}) if any(
            f.startswith("raw-") for f in os.listdir(ckpt)) else ema_state
        net.load_state_dict(raw_state)
        ema.load_state_dict(ema_state)
        log(f"resumed from step {prev['steps']} ({prev['seconds']:.0f} s trained)"
            + ("" if raw_state is not ema_state else "; no raw-* shards: training goes on from the EMA"))
    else:
        ema.load_state_dict(net.state_dict())
    net.to(device).train()
    ema.to(device).eval().requires_grad_(False)
    context, aux = models.prepare_for_training(net.transformer)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99), weight_decay=0.01,
                            fused=device.type == "cuda")
    ema_params = [p for p in ema.parameters()]
    warmup = args.warmup if prev["steps"] == 0 else args.warmup // 4
    tasks = [t for t in args.tasks.split(",") if t]
    assert tasks and all(t in ("image", "clip", "edit") for t in tasks), args.tasks
    step, start, chunk_start = prev["steps"], time.time(), prev["steps"]
    last_save, window = time.time(), []
    while time.time() < deadline or step == chunk_start:
        done = prev["seconds"] + (time.time() - start)
        lr = lr_at(step - chunk_start, done, args, warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        losses = [task_loss(task, args, rng, net, context, aux, vae, shift, scale, device) for task in tasks]
        mses = torch.stack([mse for mse, _ in losses])
        balance = sum(b.float() for _, b in losses if b is not None)
        loss = mses.sum() + balance
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, list(net.parameters()), 1 - decay)
        window.append(torch.cat([mses.detach(), gnorm.detach().float()[None], torch.as_tensor(balance).float()[None].to(device)]))
        if step % args.log_every == 0 or step == chunk_start + 1:
            w = torch.stack(window).mean(0).tolist()
            window = []
            elapsed = time.time() - start
            per_task = dict(zip(tasks, w))
            # [step, seconds, image mse, gnorm, balance, lr, {task: mse}] (the first six as chunk 1 wrote them)
            prev["curve"].append([step, round(prev["seconds"] + elapsed, 1), round(per_task.get("image", 0.0), 5),
                                  round(w[-2], 3), round(w[-1], 5), round(lr, 7),
                                  {t: round(m, 5) for t, m in per_task.items()}])
            log(f"dit step {step} mse " + " ".join(f"{t} {m:.5f}" for t, m in per_task.items())
                + f" gnorm {w[-2]:.3f} balance {w[-1]:.5f} lr {lr:.2e} {(step - chunk_start) / elapsed:.2f} steps/s")
        if args.save_every and time.time() - last_save > args.save_every:
            save_dit(net, ema, args.out, state, prev, step, prev["seconds"] + time.time() - start, chunk_start)
            last_save = time.time()
    save_dit(net, ema, args.out, state, prev, step, prev["seconds"] + time.time() - start, chunk_start)
    return ema


def save_dit(net, ema, out, state, prev, step, seconds, chunk_start):
    t = time.time()
    save_sharded(net.state_dict(), out, "raw")
    save_sharded(ema.state_dict(), out, "ema")
    dit = dict(prev)
    dit["steps"], dit["seconds"] = step, round(seconds, 1)
    dit["chunks"] = prev["chunks"] + [{"from_step": chunk_start, "to_step": step}]
    state["dit"] = dit
    write_state(out, state)
    log(f"saved step {step} to {out} ({time.time() - t:.1f} s)")


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stage", choices=["vae", "decoder", "dit", "all"], default="all")
    ap.add_argument("--ckpt", default="", help="checkpoint folder to resume from")
    ap.add_argument("--out", required=True, help="folder for the new checkpoint")
    ap.add_argument("--seconds", type=float, default=540, help="wall-time budget of this chunk")
    ap.add_argument("--vae-seconds", type=float, default=75)
    ap.add_argument("--total-seconds", type=float, default=0,
                    help="planned DiT training seconds over all chunks (LR schedule); 0: this chunk's")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--ema", type=float, default=0.998)
    ap.add_argument("--caption-drop", type=float, default=0.1)
    ap.add_argument("--tasks", default="image", help="comma list of image, clip, edit: one batch of each a step")
    ap.add_argument("--clip-batch", type=int, default=32)
    ap.add_argument("--clip-frames", type=int, default=8)
    ap.add_argument("--clip-size", type=int, default=128)
    ap.add_argument("--edit-batch", type=int, default=48)
    ap.add_argument("--vae-batch", type=int, default=32)
    ap.add_argument("--vae-size", type=int, default=256)
    ap.add_argument("--vae-lr", type=float, default=5e-4)
    ap.add_argument("--vae-kl", type=float, default=1e-4)
    ap.add_argument("--decoder-seconds", type=float, default=0,
                    help="when resuming: first fine-tune the VAE decoder (encoder frozen) this long")
    ap.add_argument("--decoder-lr", type=float, default=3e-4)
    ap.add_argument("--edge-weight", type=float, default=0.0,
                    help="vae and decoder stages: weight of the finite-difference (edge) L1 term")
    ap.add_argument("--edge-token-weight", type=float, default=0.0,
                    help="dit stage: per-token loss weight 1 + W x the token's share of the picture's edges")
    ap.add_argument("--vae-resume", action="store_true",
                    help="vae stage: start from --ckpt's VAE instead of random weights")
    ap.add_argument("--vae-from", default="",
                    help="checkpoint folder whose VAE (and latent statistics) replace --ckpt's")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--save-every", type=float, default=150, help="seconds between checkpoints (0: at the end only)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    begin = time.time()
    deadline = begin + args.seconds
    device = torch.device(args.device)
    os.makedirs(args.out, exist_ok=True)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    import diffusers
    import transformers
    log(f"torch {torch.__version__} diffusers {diffusers.__version__} transformers {transformers.__version__} "
        f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}); args {vars(args)}")
    state = read_state(args.ckpt)
    if args.stage == "decoder":
        args.decoder_seconds = args.decoder_seconds or args.seconds
    vae_dir = args.vae_from or args.ckpt
    if args.vae_from:
        if not os.path.exists(os.path.join(args.vae_from, "vae.safetensors")):
            sys.exit(f"train.py: error: --vae-from {args.vae_from}: no vae.safetensors there")
        state["vae"] = read_state(args.vae_from)["vae"]
        log(f"VAE from {args.vae_from} ({state['vae']['steps']} steps)")
    have_vae = vae_dir and os.path.exists(os.path.join(vae_dir, "vae.safetensors")) and state.get("vae")
    if args.vae_resume and not have_vae:
        sys.exit("train.py: error: --vae-resume needs a checkpoint with a VAE (--ckpt or --vae-from)")
    if args.stage in ("vae", "all") and not (args.stage == "all" and have_vae):
        init = load_vae(vae_dir, device) if args.vae_resume else None
        vae = train_vae(args, device, min(deadline, time.time() + args.vae_seconds), state, init)
        save_vae(vae, args.out, state)
        write_state(args.out, state)
    else:
        vae = load_vae(vae_dir, device)
        if args.decoder_seconds > 0:
            vae = finetune_decoder(args, vae, device, min(deadline, time.time() + args.decoder_seconds), state)
            save_vae(vae, args.out, state)
            write_state(args.out, state)
        elif args.vae_from or os.path.abspath(args.ckpt) != os.path.abspath(args.out):
            save_vae(vae, args.out, state)
    if args.stage in ("dit", "all"):
        if not args.total_seconds:
            args.total_seconds = (state.get("dit") or {}).get("seconds", 0) + deadline - time.time()
        train_dit(args, device, deadline, state, vae, args.ckpt)
    log(f"chunk done in {time.time() - begin:.0f} s")


if __name__ == "__main__":
    main()
