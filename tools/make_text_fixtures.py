#!/usr/bin/env python3
"""Generate small reference fixtures for moedit's text side (tokenizer, Llama-style text encoder,
HiDream conditioning).

What it produces (deterministic; rerunning overwrites the same bytes):

  tests/fixtures/text_tiny/            one tiny model, laid out as in a moedit/diffusers model dir
    tokenizer/tokenizer.json           WordLevel tokenizer built with the `tokenizers` library:
                                       ~60 words (colors, shapes, positions, "a", "on", "the",
                                       "background", ...), Lowercase normalizer, Whitespace
                                       pre-tokenizer, [UNK], "[BOS] $A" TemplateProcessing.
    text_encoder/config.json           transformers LlamaModel (hidden 32, 2 layers, 4 heads,
    text_encoder/model.safetensors     2 kv heads (GQA), intermediate 64, rope_theta 500000),
                                       every parameter re-initialised randomly (norms too), rounded
                                       to BF16-representable values and saved as BF16.
    io.safetensors                     for prompt p in 0..2 (batch dim dropped):
        prompt_<p>_ids                   I32 [L]                  tokenizer(prompt).ids
        prompt_<p>_hidden_states         F32 [layers + 1, L, C]   output_hidden_states=True
                                         (0: embeddings, l: output of layer l, last: after the
                                         final norm, as transformers returns them)
        prompt_<p>_prompt_embeds_llama3  F32 [layers, L, C]       hidden_states[1:]
        prompt_<p>_prompt_embeds_t5      F32 [L, C]               hidden_states[-1]
        prompt_<p>_pooled_prompt_embeds  F32 [C]                  hidden_states[-1].mean(tokens)
    fixture.json                       prompts, seed, config, shapes, versions

  tests/fixtures/text_tokenizers/      extra tokenizer.json variants and expected ids
    wordlevel_bos.json                 the text_tiny tokenizer (copy)
    wordlevel_split_eos.json           Sequence[Strip, Replace("_", " "), Lowercase] normalizer,
                                       WhitespaceSplit, "[BOS] $A [EOS]", truncation in the file
                                       (max_length 8, direction Left)
    wordlevel_plain.json               no normalizer (case-sensitive), Sequence[WhitespaceSplit,
                                       Whitespace] pre-tokenizer, no post-processor
    cases.json                         {"cases": [{"tokenizer", "text", "repeat" (optional: the
                                       text is that many copies of "text" joined by spaces),
                                       "max_length" (0: none), "ids"}]}: ids from tokenizers'
                                       Tokenizer.encode, with enable_truncation(max_length) where
                                       max_length > 0 (clamped by the file's own truncation)

Total size is well under 300 KB.

Rerun:

    python3 tools/make_text_fixtures.py

Requires torch, transformers (developed against 5.23), tokenizers (0.23), safetensors. CPU only.
"""

import json
import math
import os
import shutil
import sys

import torch
import torch.nn as nn
import tokenizers
import transformers
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import LlamaConfig, LlamaModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_common import FIXTURES, list_files, setup_determinism, write_info  # noqa: E402
SEED = 2024

SPECIALS = ["[UNK]", "[BOS]", "[EOS]", "[PAD]"]
WORDS = [
    # colors
    "red", "green", "blue", "yellow", "orange", "purple", "black", "white", "gray", "pink", "brown",
    # shapes and things
    "circle", "square", "triangle", "star", "cube", "sphere", "line", "cat", "dog", "tree", "house", "sky", "sun",
    # positions
    "left", "right", "top", "bottom", "center", "middle", "above", "below", "next", "to", "corner",
    # glue
    "a", "an", "the", "on", "in", "of", "with", "and", "at", "background", "foreground",
    # sizes and styles
    "small", "large", "big", "tiny", "bright", "dark", "photo", "painting", "café",
    # punctuation runs the Whitespace pre-tokenizer produces
    ",", ".", "!", "-", "'",
]

PROMPTS = [
    "a red circle on the left",
    "A small Blue Square above a green triangle, on a white background.",
    "",
]

# A very long prompt: LONG_UNIT repeated LONG_REPEAT times, joined by single spaces (cases.json
# stores it as {"text": LONG_UNIT, "repeat": LONG_REPEAT} to stay small).
LONG_UNIT, LONG_REPEAT = "a red circle on the left", 200
LONG = " ".join([LONG_UNIT] * LONG_REPEAT)

# (text, max_length) pairs checked against every tokenizer; max_length 0 = no truncation.
TOKENIZER_TEXTS = [
    "a red circle on the left",
    "A Red CIRCLE on the LEFT",
    "a blue square, a green triangle.",
    "",
    "   ",
    "a purple elephant on the moon",
    "red!!! blue!",
    "top-left corner",
    "tabs\tand\nnewlines\r\nin the sky",
    "a_b c_d",
    "3 small stars and 42 cubes",
    "CAFÉ on the corner",
    "café naïve ÉCLAIR",
    "red\u2014blue \u00abstar\u00bb",
    "the sky's background",
    "[BOS] a red [EOS] circle",
    "a[UNK]red",
    "  leading and trailing spaces  ",
    "mixed CASE with symbols #@$ and (brackets)",
    "a.b,c...d",
    "\u00a0non\u00a0breaking\u3000spaces",
    "emoji \U0001F600 star star\U0001F600red",
    "\u0394\u0395\u039b\u03a4\u0391 \u041a\u0420\u0410\u0421\u041d\u042b\u0419 \u00c0 \u0178 \u0130 \uff32\uff25\uff24",
    "x\u00b2 + y\u00b3 \u00d7 z\u00a7 \u2160\u2161 \u24b6\u24b7 \u2190\u2192",
    LONG,
]
TRUNCATIONS = [(LONG, m) for m in (1, 2, 5, 16, 77)] + [
    ("a red circle", 4),
    ("a red circle", 3),
    ("", 1),
]


def vocab():
    return {w: i for i, w in enumerate(SPECIALS + WORDS)}


def tokenizer_bos():
    tok = Tokenizer(models.WordLevel(vocab(), unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(["[UNK]", "[BOS]", "[EOS]", "[PAD]"])
    tok.post_processor = processors.TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", 1)])
    return tok


def tokenizer_split_eos():
    tok = Tokenizer(models.WordLevel(vocab(), unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence(
        [normalizers.Strip(), normalizers.Replace("_", " "), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(["[UNK]", "[BOS]", "[EOS]"])
    tok.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", 1), ("[EOS]", 2)])
    tok.enable_truncation(max_length=8, direction="left")
    return tok


def tokenizer_plain():
    tok = Tokenizer(models.WordLevel(vocab(), unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Whitespace()])
    return tok


def write_tokenizer(tok, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    text = json.dumps(json.loads(tok.to_str()), indent=2, ensure_ascii=False, sort_keys=False)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    # What we wrote loads back to the same tokenizer.
    again = Tokenizer.from_file(path)
    for t in TOKENIZER_TEXTS:
        assert again.encode(t).ids == tok.encode(t).ids, t


def case(name, text, max_length, ids):
    if text == LONG:
        return {"tokenizer": name, "text": LONG_UNIT, "repeat": LONG_REPEAT, "max_length": max_length, "ids": ids}
    return {"tokenizer": name, "text": text, "max_length": max_length, "ids": ids}


def build_tokenizers():
    out_dir = os.path.join(FIXTURES, "text_tokenizers")
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    variants = {
        "wordlevel_bos.json": tokenizer_bos(),
        "wordlevel_split_eos.json": tokenizer_split_eos(),
        "wordlevel_plain.json": tokenizer_plain(),
    }
    cases = []
    for name, tok in variants.items():
        write_tokenizer(tok, os.path.join(out_dir, name))
        file_truncation = tok.truncation
        for text in TOKENIZER_TEXTS:
            cases.append(case(name, text, 0, tok.encode(text).ids))
        for text, max_length in TRUNCATIONS:
            t = Tokenizer.from_str(tok.to_str())
            direction = file_truncation["direction"] if file_truncation else "right"
            limit = max_length
            if file_truncation:
                limit = min(limit, file_truncation["max_length"])
            specials = t.post_processor.num_special_tokens_to_add(False) if t.post_processor else 0
            if limit < max(specials, 1):
                continue  # moedit refuses a limit that cannot hold the template's special tokens
            t.enable_truncation(max_length=limit, direction=direction)
            cases.append(case(name, text, max_length, t.encode(text).ids))
    with open(os.path.join(out_dir, "cases.json"), "w", encoding="utf-8") as f:
        f.write('{"generator": "tools/make_text_fixtures.py", "tokenizers": "%s", "cases": [\n' % tokenizers.__version__)
        f.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in cases))
        f.write("\n]}\n")
    return variants["wordlevel_bos.json"]


@torch.no_grad()
def reinit_(model: nn.Module, gen: torch.Generator):
    """Every parameter random: embeddings ~ N(0, 1), linears ~ N(0, 1/fan_in), norms 1 + 0.2 N(0, 1)."""
    done = set()
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Embedding):
            mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen))
            done.add(id(mod.weight))
        elif isinstance(mod, nn.Linear):
            assert mod.bias is None, name
            mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen) / math.sqrt(mod.weight.shape[1]))
            done.add(id(mod.weight))
        elif hasattr(mod, "weight") and "norm" in type(mod).__name__.lower():
            mod.weight.copy_(1.0 + 0.2 * torch.randn(mod.weight.shape, generator=gen))
            done.add(id(mod.weight))
    missing = [n for n, p in model.named_parameters() if id(p) not in done]
    assert not missing, f"parameters not re-initialised: {missing}"


def round_to_bf16_(model):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))


@torch.no_grad()
def encode(model, ids):
    out = model(input_ids=torch.tensor([ids], dtype=torch.long), output_hidden_states=True)
    hidden = torch.stack(out.hidden_states, 0)[:, 0]  # [layers + 1, L, C]
    assert torch.equal(hidden[-1], out.last_hidden_state[0]), "last hidden state is not the normed output"
    return hidden


def conditioning(hidden):
    """moedit's HiDream conditioning rule (text/text_conditioning.h)."""
    return {
        "prompt_embeds_llama3": hidden[1:].clone(),
        "prompt_embeds_t5": hidden[-1].clone(),
        "pooled_prompt_embeds": hidden[-1].mean(0),
    }


def build_model(tok):
    out_dir = os.path.join(FIXTURES, "text_tiny")
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    write_tokenizer(tok, os.path.join(out_dir, "tokenizer", "tokenizer.json"))

    config = LlamaConfig(
        vocab_size=len(SPECIALS) + len(WORDS),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        rms_norm_eps=1e-5,
        rope_theta=500000.0,
        max_position_embeddings=1024,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
        attn_implementation="eager",
    )
    torch.manual_seed(SEED)
    model = LlamaModel(config).eval()
    gen = torch.Generator().manual_seed(SEED)
    reinit_(model, gen)
    round_to_bf16_(model)

    tensors, shapes, prompts = {}, {}, []
    for p, text in enumerate(PROMPTS):
        ids = tok.encode(text).ids
        assert 3 not in ids[1:], "pad id in a prompt"
        hidden = encode(model, ids)
        assert torch.isfinite(hidden).all()
        assert torch.equal(hidden, encode(model, ids)), "not deterministic"
        tensors[f"prompt_{p}_ids"] = torch.tensor(ids, dtype=torch.int32)
        tensors[f"prompt_{p}_hidden_states"] = hidden.contiguous()
        for name, value in conditioning(hidden).items():
            tensors[f"prompt_{p}_{name}"] = value
        prompts.append({"text": text, "ids": ids})

    edir = os.path.join(out_dir, "text_encoder")
    model.to(torch.bfloat16).save_pretrained(edir, safe_serialization=True)
    model.to(torch.float32)
    reloaded = LlamaModel.from_pretrained(edir, dtype=torch.float32, attn_implementation="eager").eval()
    for p, text in enumerate(PROMPTS):
        again = encode(reloaded, prompts[p]["ids"])
        assert torch.equal(again, tensors[f"prompt_{p}_hidden_states"]), "reloaded encoder differs"

    shapes = {k: list(v.shape) for k, v in tensors.items()}
    meta = {"fixture": json.dumps({"name": "text_tiny", "seed": SEED, "shapes": shapes}, sort_keys=True)}
    save_file(tensors, os.path.join(out_dir, "io.safetensors"), metadata=meta)
    info = {
        "name": "text_tiny",
        "generator": "tools/make_text_fixtures.py",
        "seed": SEED,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__},
        "prompts": [p["text"] for p in prompts],
        "prompt_ids": [p["ids"] for p in prompts],
        "config": json.load(open(os.path.join(edir, "config.json"))),
        "tensors": shapes,
        "rms": {k: v.float().pow(2).mean().sqrt().item() for k, v in tensors.items() if v.is_floating_point()},
        "notes": [
            "batch dim of 1 dropped everywhere",
            "hidden_states as transformers' LlamaModel(output_hidden_states=True): index 0 the embeddings, "
            "index l the output of layer l, the last one after the final norm",
            "conditioning: llama3 = hidden_states[1:], t5 = hidden_states[-1], pooled = mean over tokens of t5",
        ],
    }
    write_info(out_dir, info)
    return out_dir


def main():
    setup_determinism()
    tok = build_tokenizers()
    build_model(tok)
    total = 0
    for name in ("text_tiny", "text_tokenizers"):
        total += list_files(os.path.join(FIXTURES, name), 60)
    print(f"text fixtures: {total} B")
    assert total < 300_000, "text fixtures grew past 300 KB"


if __name__ == "__main__":
    sys.exit(main())
