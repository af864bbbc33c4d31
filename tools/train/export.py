"""Write models/demo, the trained demo model, in diffusers format from a training checkpoint.

    tokenizer/tokenizer.json   WordLevel over data.VOCAB (Lowercase, Whitespace, "[BOS] $A")
    text_encoder/              transformers LlamaModel (EMA weights), bf16
    transformer/               HiDreamImageTransformer2DModel (EMA weights), bf16, shards of <= 15 MB
    vae/                       AutoencoderKL, bf16, scaling_factor / shift_factor from training
    scheduler/                 FlowMatchEulerDiscreteScheduler, shift models.SCHEDULER_SHIFT
    model_index.json

Every file stays under 16 MiB and the folder under 40 MiB (checked). Then the folder is
loaded back with diffusers/transformers/tokenizers' own from_pretrained and compared with the
checkpoint's weights.

    python3 tools/train/export.py --ckpt .train/ckpt --out models/demo
"""
import argparse
import json
import os
import shutil
import sys

import torch
from safetensors import safe_open
from tokenizers import Tokenizer, models as tok_models, normalizers, pre_tokenizers, processors

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import models  # noqa: E402

MAX_FILE = 16 << 20
MAX_TOTAL = 40 << 20


def build_tokenizer():
    tok = Tokenizer(tok_models.WordLevel(data.VOCAB, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(data.SPECIALS)
    tok.post_processor = processors.TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", data.BOS)])
    return tok


def write_tokenizer(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    text = json.dumps(json.loads(build_tokenizer().to_str()), indent=2, ensure_ascii=False)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")


def load_checkpoint(ckpt):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from train import load_sharded  # noqa: E402
    ema = models.fit_vocab(load_sharded(ckpt, "ema"))
    with safe_open(os.path.join(ckpt, "vae.safetensors"), "pt") as f:
        meta = f.metadata()
        vae_state = {k: f.get_tensor(k) for k in f.keys()}
    return ema, vae_state, float(meta["shift_factor"]), float(meta["scaling_factor"])


def build_modules(ckpt):
    ema, vae_state, shift, scale = load_checkpoint(ckpt)
    encoder = models.build_encoder().eval()
    transformer = models.build_transformer().eval()
    vae = models.build_vae().eval()
    part = lambda prefix: {k[len(prefix):]: v.float() for k, v in ema.items() if k.startswith(prefix)}
    encoder.load_state_dict(part("text_encoder."))
    transformer.load_state_dict(part("transformer."))
    vae.load_state_dict({k: v.float() for k, v in vae_state.items()})
    vae.register_to_config(scaling_factor=scale, shift_factor=shift)
    return encoder, transformer, vae


def write_model(encoder, transformer, vae, out, comment):
    from diffusers import FlowMatchEulerDiscreteScheduler
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    write_tokenizer(os.path.join(out, "tokenizer", "tokenizer.json"))
    encoder.to(torch.bfloat16).save_pretrained(os.path.join(out, "text_encoder"), safe_serialization=True)
    transformer.to(torch.bfloat16).save_pretrained(os.path.join(out, "transformer"), safe_serialization=True,
                                                   max_shard_size="15MB")
    vae.to(torch.bfloat16).save_pretrained(os.path.join(out, "vae"), safe_serialization=True)
    for m in (encoder, transformer, vae):
        m.to(torch.float32)
    FlowMatchEulerDiscreteScheduler(shift=models.SCHEDULER_SHIFT).save_pretrained(os.path.join(out, "scheduler"))
    index = {"_class_name": "MoeditTextToImagePipeline", "_comment": comment,
             "transformer": ["diffusers", "HiDreamImageTransformer2DModel"], "vae": ["diffusers", "AutoencoderKL"],
             "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
             "text_encoder": ["transformers", "LlamaModel"], "tokenizer": ["tokenizers", "Tokenizer"]}
    with open(os.path.join(out, "model_index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")


def check_sizes(out):
    total = 0
    for d, _, names in os.walk(out):
        for n in names:
            os.chmod(os.path.join(d, n), 0o644)
            size = os.path.getsize(os.path.join(d, n))
            assert size <= MAX_FILE, f"{n}: {size} bytes > 16 MiB"
            total += size
    assert total <= MAX_TOTAL, f"{out}: {total} bytes > 40 MiB"
    return total


@torch.no_grad()
def check_reload(out, encoder, transformer, vae):
    """diffusers/transformers load the folder back to the same (bf16-rounded) weights."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, HiDreamImageTransformer2DModel
    from transformers import LlamaModel
    pairs = [(LlamaModel.from_pretrained(os.path.join(out, "text_encoder"), dtype=torch.float32), encoder),
             (HiDreamImageTransformer2DModel.from_pretrained(os.path.join(out, "transformer"),
                                                             torch_dtype=torch.float32), transformer),
             (AutoencoderKL.from_pretrained(os.path.join(out, "vae"), torch_dtype=torch.float32), vae)]
    for loaded, mine in pairs:
        a, b = loaded.state_dict(), mine.state_dict()
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k].float(), b[k].to(torch.bfloat16).float()), k
    FlowMatchEulerDiscreteScheduler.from_pretrained(os.path.join(out, "scheduler"))
    Tokenizer.from_file(os.path.join(out, "tokenizer", "tokenizer.json"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", default=".train/ckpt")
    ap.add_argument("--out", default="models/demo")
    args = ap.parse_args()
    encoder, transformer, vae = build_modules(args.ckpt)
    with open(os.path.join(args.ckpt, "state.json")) as f:
        state = json.load(f)
    comment = (f"moedit demo model, trained by tools/train (docs/demo-model.md): VAE {state['vae']['steps']} steps, "
               f"text encoder + transformer {state['dit']['steps']} steps (EMA)")
    write_model(encoder, transformer, vae, args.out, comment)
    total = check_sizes(args.out)
    check_reload(args.out, encoder, transformer, vae)
    count = lambda m: sum(p.numel() for p in m.parameters())
    print(f"wrote {args.out}: {total / 2**20:.2f} MiB; parameters: text encoder {count(encoder) / 1e6:.2f} M, "
          f"transformer {count(transformer) / 1e6:.2f} M, vae {count(vae) / 1e6:.2f} M; "
          f"vae scaling_factor {vae.config.scaling_factor} shift_factor {vae.config.shift_factor}")


if __name__ == "__main__":
    main()
