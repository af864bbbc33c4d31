"""A training checkpoint rebuilt from an exported model folder (the inverse of export.py), so
training can go on from the shipped models/demo when the checkpoint it came from is gone
(checkpoints stay out of the repository).

    python3 tools/train/from_model.py --model models/demo --out .train/ckpt

Writes vae.safetensors (with shift_factor / scaling_factor), ema-N.safetensors (the text
encoder and transformer: the model's weights are the EMA) and state.json. The DiT step count
is read from model_index.json's comment; the optimizer and the loss curve of the earlier
chunks are not in a model folder, so the new state says where it came from instead.
"""
import argparse
import json
import os
import re
import sys

import torch
from diffusers import AutoencoderKL, HiDreamImageTransformer2DModel
from transformers import LlamaModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/demo")
    ap.add_argument("--out", default=".train/ckpt")
    ap.add_argument("--dit-seconds", type=float, default=450,
                    help="DiT seconds already trained (the LR schedule's position); chunk 1: about 450")
    args = ap.parse_args()
    index = os.path.join(args.model, "model_index.json")
    if not os.path.isfile(index):
        sys.exit(f"from_model: {index}: no such file (--model must be an exported model folder)")
    with open(index) as f:
        comment = json.load(f).get("_comment", "")
    found = re.search(r"VAE (\d+) steps, text encoder \+ transformer (\d+) steps", comment)
    if not found:
        sys.exit(f"from_model: {args.model}/model_index.json does not say its training steps: {comment!r}")
    vae_steps, dit_steps = int(found.group(1)), int(found.group(2))
    vae = AutoencoderKL.from_pretrained(os.path.join(args.model, "vae"), torch_dtype=torch.float32)
    encoder = LlamaModel.from_pretrained(os.path.join(args.model, "text_encoder"), dtype=torch.float32)
    transformer = HiDreamImageTransformer2DModel.from_pretrained(os.path.join(args.model, "transformer"),
                                                                 torch_dtype=torch.float32)
    os.makedirs(args.out, exist_ok=True)
    shift, scale = float(vae.config.shift_factor), float(vae.config.scaling_factor)
    state = {"vae": {"steps": vae_steps, "shift_factor": shift, "scaling_factor": scale, "from_model": args.model},
             "dit": {"steps": dit_steps, "seconds": args.dit_seconds, "curve": [], "from_model": args.model,
                     "chunks": [{"from_step": 0, "to_step": dit_steps}]}}
    train.save_vae(vae, args.out, state)
    weights = {f"text_encoder.{k}": v for k, v in encoder.state_dict().items()}
    weights.update({f"transformer.{k}": v for k, v in transformer.state_dict().items()})
    train.save_sharded(weights, args.out, "ema")
    train.write_state(args.out, state)
    print(f"{args.out}: checkpoint of {args.model} (VAE {vae_steps} steps, DiT {dit_steps} steps, "
          f"shift {shift} scale {scale})")


if __name__ == "__main__":
    main()
