#!/usr/bin/env python3
"""The fixture of tests/fixtures/llama3_tiny: a tiny random LlamaForCausalLM in Llama 3.1's configuration
(llama3 RoPE rescaling, GQA, "model." names, sharded weights) and what transformers computes with it, for
tests/test_llama3_encoder.c.

What it makes (deterministic; a rerun rewrites the same bytes):

  text_encoder/config.json                  LlamaConfig as transformers saves it: hidden 64, 3 layers,
                                            4 heads, 2 kv heads, head_dim 16, rope_theta 500000 and
                                            rope_parameters {rope_type "llama3", factor 8,
                                            low_freq_factor 1, high_freq_factor 4,
                                            original_max_position_embeddings 64}: with head_dim 16 the
                                            eight frequencies fall in all three llama3 bands (kept,
                                            smoothed, divided by factor).
  text_encoder/model-0000k-of-0000n.safetensors, model.safetensors.index.json
                                            every parameter random (norms too), rounded to BF16 and
                                            saved as BF16 in several shards (max_shard_size 40 kB).
  io.safetensors
    inv_freq             F32 [8]            model.model.rotary_emb.inv_freq
    ids                  I32 [12]           7 prompt ids then 5 pad ids (the eos id, as
                                            HiDreamImagePipeline pads tokenizer_4)
    valid                I32 [1]            7: attention_mask = 1 for the first 7 tokens
    hidden_states        F32 [4, 12, 64]    LlamaForCausalLM(ids, attention_mask,
                                            output_hidden_states=True).hidden_states (0: embeddings,
                                            l: layer l's output, 3: after the final norm), padded rows
                                            included: diffusers hands them all to the transformer
    short_hidden_states  F32 [4, 7, 64]     the 7 prompt ids alone, no mask
  fixture.json                              config, shapes, versions

Rerun: python3 tools/make_llama3_fixture.py   (needs torch, transformers, safetensors)
"""
import copy
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_common as common  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

FIXTURE = os.path.join(common.FIXTURES, "llama3_tiny")
SEED = 31
VOCAB, PAD = 96, 2
IDS = [1, 17, 45, 3, 88, 60, 9]
LENGTH = 12


def config():
    return LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
                       rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=PAD, tie_word_embeddings=False,
                       rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                        "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                        "original_max_position_embeddings": 64},
                       attn_implementation="eager")


@torch.no_grad()
def main():
    common.setup_determinism()
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config()).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * (0.3 if p.ndim == 2 else 0.2) + (1.0 if p.ndim == 1 else 0.0))
    common.round_parameters_(model, torch.bfloat16)
    if os.path.isdir(FIXTURE):
        shutil.rmtree(FIXTURE)
    os.makedirs(FIXTURE)
    # A copy goes to BF16 for saving: converting the model itself would round its inv_freq buffer too.
    copy.deepcopy(model).to(torch.bfloat16).save_pretrained(os.path.join(FIXTURE, "text_encoder"),
                                                            safe_serialization=True, max_shard_size="40KB")

    ids = torch.tensor([IDS + [PAD] * (LENGTH - len(IDS))])
    mask = torch.tensor([[1] * len(IDS) + [0] * (LENGTH - len(IDS))])
    padded = model(ids, attention_mask=mask, output_hidden_states=True).hidden_states
    short = model(ids[:, :len(IDS)], output_hidden_states=True).hidden_states
    tensors = {
        "inv_freq": model.model.rotary_emb.inv_freq.float().contiguous(),
        "ids": ids[0].to(torch.int32).contiguous(),
        "valid": torch.tensor([len(IDS)], dtype=torch.int32),
        "hidden_states": torch.stack([h[0] for h in padded]).contiguous(),
        "short_hidden_states": torch.stack([h[0] for h in short]).contiguous(),
    }
    save_file(tensors, os.path.join(FIXTURE, "io.safetensors"))
    common.write_info(FIXTURE, {"generator": "tools/make_llama3_fixture.py", "seed": SEED,
                                "torch": torch.__version__, "transformers": transformers.__version__,
                                "ids": IDS, "length": LENGTH, "pad_id": PAD,
                                "shapes": {k: list(v.shape) for k, v in tensors.items()}})
    total = common.list_files(FIXTURE, 56)
    print(f"{total} B; hidden max {tensors['hidden_states'].abs().max():.3f}")


if __name__ == "__main__":
    sys.exit(main())
