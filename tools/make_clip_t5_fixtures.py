#!/usr/bin/env python3
"""Reference fixture for moedit's native CLIP and T5 text encoders (text/clip_encoder.c,
text/t5_encoder.c): tiny random stand-ins of HiDream-I1's text_encoder, text_encoder_2 and
text_encoder_3, saved by transformers, and their outputs on a few id sequences.

What it produces (deterministic; rerunning writes the same bytes):

  tests/fixtures/text_encoders/
    clip_l/config.json, model.safetensors   CLIPTextModelWithProjection like HiDream's CLIP-L:
                                            hidden_act quick_gelu, max_position_embeddings 248
                                            (Long-CLIP), eos_token_id 2 (the legacy rule: pool at
                                            argmax(ids))
    clip_g/config.json, model.safetensors   the same with hidden_act gelu, 77 positions and
                                            eos_token_id 511 (pool at the first id == 511)
    t5/config.json, model.safetensors       T5EncoderModel like T5 v1.1 XXL: gated-gelu
                                            (gelu_new), 32 buckets, max_distance 128
    io.safetensors
      clip_l_ids_<i>, clip_l_text_embeds_<i>  I32 [L], F32 [projection_dim]   (text_embeds)
      clip_g_ids_<i>, clip_g_text_embeds_<i>
      t5_ids_<i>, t5_mask_<i>, t5_hidden_<i>  I32 [L], I32 [L], F32 [L, d_model]
                                              (last_hidden_state with attention_mask)
      t5_buckets_hidream, t5_buckets_small    I32 [1201]: T5Attention._relative_position_bucket
                                              of relative positions -600..600 (bidirectional)
                                              for (num_buckets, max_distance) = (32, 128) (this
                                              fixture's and HiDream's) and (8, 20)
    fixture.json                            seed, configs, sequences, versions

Every parameter (norm weights and biases too) is re-initialised from a fixed seed and
rounded to BF16-representable values; the weights are stored as BF16 and the reference
runs in float32 on the CPU.

Rerun: python3 tools/make_clip_t5_fixtures.py   (torch, transformers 5.25, safetensors; CPU)
"""
import json
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel
from transformers.models.t5.modeling_t5 import T5Attention

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_common as common  # noqa: E402

FIXTURE = os.path.join(common.FIXTURES, "text_encoders")
SEED = 2718
VOCAB = 512


def clip_config(act, positions, eos):
    return CLIPTextConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, projection_dim=16,
                          num_hidden_layers=3, num_attention_heads=4, max_position_embeddings=positions,
                          hidden_act=act, layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=eos)


def t5_config():
    return T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=3, num_heads=4,
                    relative_attention_num_buckets=32, relative_attention_max_distance=128,
                    feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6, is_encoder_decoder=False,
                    use_cache=False, pad_token_id=0, eos_token_id=1)


def randomize_(model, generator):
    """Every parameter from N(0, s^2): matrices s = 1/sqrt(fan_in), embeddings 0.5 (T5's
    relative bias 1.0), biases 0.1; norm weights 1 + N(0, 0.1^2)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * noise)
            elif name.endswith("bias"):
                p.copy_(0.1 * noise)
            elif "relative_attention_bias" in name:
                p.copy_(noise)
            elif "embed" in name or name == "shared.weight":
                p.copy_(0.5 * noise)
            else:
                p.copy_(noise / p.shape[1] ** 0.5)
    common.round_parameters_(model, torch.bfloat16)


def save(model, name):
    directory = os.path.join(FIXTURE, name)
    model.to(torch.bfloat16).save_pretrained(directory, safe_serialization=True)
    model.to(torch.float32)
    return directory


def sequences(generator, lengths, eos, legacy):
    """Id sequences of the given lengths, ending in an EOS then padding as a tokenizer gives
    them, plus odd cases: EOS repeated (pad == eos: pool at the first), no EOS at all (first
    rule: position 0), and under the legacy rule ties of the largest id (argmax: the first)."""
    out = []
    for i, n in enumerate(lengths):
        ids = torch.randint(3, VOCAB - 1, (n,), generator=generator, dtype=torch.int32)
        if n > 1:
            ids[0] = 0
            end = max(1, n // 2 if i % 2 else n - 1)
            ids[end] = eos
            ids[end + 1:] = eos if not legacy else 1
        out.append(ids)
    if legacy:
        tie = torch.randint(3, VOCAB - 2, (9,), generator=generator, dtype=torch.int32)
        tie[2] = tie[6] = VOCAB - 1  # the largest id twice: argmax takes position 2
        out.append(tie)
    else:
        out.append(torch.randint(3, VOCAB - 2, (5,), generator=generator, dtype=torch.int32))  # no EOS
    return out


def main():
    common.setup_determinism()
    shutil.rmtree(FIXTURE, ignore_errors=True)
    os.makedirs(FIXTURE)
    generator = torch.Generator().manual_seed(SEED)
    io, info = {}, {"seed": SEED, "transformers": transformers.__version__, "torch": torch.__version__}

    for name, act, positions, eos, lengths in (("clip_l", "quick_gelu", 248, 2, (1, 7, 77, 128, 218, 248)),
                                               ("clip_g", "gelu", 77, VOCAB - 1, (1, 7, 77))):
        torch.manual_seed(SEED)
        model = CLIPTextModelWithProjection(clip_config(act, positions, eos)).eval()
        randomize_(model, generator)
        save(model, name)
        seqs = sequences(generator, lengths, eos, legacy=eos == 2)
        with torch.no_grad():
            for i, ids in enumerate(seqs):
                out = model(input_ids=ids[None].long())
                io[f"{name}_ids_{i}"] = ids.contiguous()
                io[f"{name}_text_embeds_{i}"] = out.text_embeds[0].float().contiguous()
        info[name] = {"hidden_act": act, "max_position_embeddings": positions, "eos_token_id": eos,
                      "lengths": [len(s) for s in seqs]}

    torch.manual_seed(SEED)
    t5 = T5EncoderModel(t5_config()).eval()
    randomize_(t5, generator)
    save(t5, "t5")
    t5_cases = []
    for n, real in ((1, 1), (7, 7), (77, 77), (128, 128), (218, 218), (128, 20)):
        ids = torch.randint(2, VOCAB, (n,), generator=generator, dtype=torch.int32)
        mask = torch.zeros(n, dtype=torch.int32)
        mask[:real] = 1
        if real < n:  # padded as HiDream's tokenizer_3 pads: EOS, then pad id 0 under mask 0
            ids[real - 1] = 1
            ids[real:] = 0
        t5_cases.append((ids, mask))
    with torch.no_grad():
        for i, (ids, mask) in enumerate(t5_cases):
            out = t5(input_ids=ids[None].long(), attention_mask=mask[None].long())
            io[f"t5_ids_{i}"] = ids.contiguous()
            io[f"t5_mask_{i}"] = mask.contiguous()
            io[f"t5_hidden_{i}"] = out.last_hidden_state[0].float().contiguous()
    relative = torch.arange(-600, 601, dtype=torch.long)
    for key, buckets, distance in (("hidream", 32, 128), ("small", 8, 20)):
        io[f"t5_buckets_{key}"] = T5Attention._relative_position_bucket(
            relative, bidirectional=True, num_buckets=buckets, max_distance=distance).to(torch.int32).contiguous()
    info["t5"] = {"lengths": [len(c[0]) for c in t5_cases], "real_tokens": [int(c[1].sum()) for c in t5_cases],
                  "buckets": {"relative_positions": [-600, 600], "hidream": [32, 128], "small": [8, 20]}}

    save_file(io, os.path.join(FIXTURE, "io.safetensors"), metadata={"format": "pt"})
    common.write_info(FIXTURE, info)
    total = common.list_files(FIXTURE, 60)
    print(f"total {total} B")


if __name__ == "__main__":
    main()
