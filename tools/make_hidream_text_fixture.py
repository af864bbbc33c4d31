#!/usr/bin/env python3
"""The fixture of tests/fixtures/hidream_text: a model folder with HiDream-I1's own text side in tiny
random form and real-format tokenizers, and what diffusers' HiDreamImagePipeline computes with it, for
tests/test_hidream_text_matches_diffusers.c.

The folder (deterministic; a rerun rewrites the same bytes):

  model_index.json                  HiDreamImagePipeline's components
  transformer, vae, scheduler       symlinks to models/tiny-random's (caption channels 32 + 32,
                                    text_emb_dim 32, llama_layers [0, 1]; FlowMatchEuler)
  tokenizer/, tokenizer_2/          CLIP BPE (vocab.json + merges.txt; tokenizer_2 pads with "!"),
  tokenizer_3/, tokenizer_4/        T5 Unigram and Llama 3 BPE tokenizer.json: copies of the trained
                                    tokenizers of tests/fixtures/tokenizers/{clip,clip2,t5,llama3}
                                    (tools/make_tokenizer_fixtures.py), without their test lists
  text_encoder/, text_encoder_2/    CLIPTextModelWithProjection: width 32, 2 layers, 128 positions,
                                    projection 16 (16 + 16 = text_emb_dim)
  text_encoder_3/                   T5EncoderModel: d_model 32, 2 layers, gated-gelu
  text_encoder_4/                   LlamaForCausalLM: width 32, 2 layers, GQA 4/2, llama3 RoPE
                                    (factor 8, original_max_position_embeddings 64: the
                                    rescaling matters within 128 positions), tied lm_head
                                    Every encoder parameter is random, rounded to BF16, saved as BF16.
  io.safetensors
    case_<c>_prompt_embeds_t5       F32 [128, 32]     HiDreamImagePipeline.encode_prompt(prompt,
    case_<c>_prompt_embeds_llama3   F32 [2, 128, 32]  prompt_2..4, max_sequence_length=128,
    case_<c>_pooled_prompt_embeds   F32 [32]          do_classifier_free_guidance=False) for
                                                      each case of fixture.json's "cases"
    case_<c>_ids_<k>, case_<c>_valid  I32 [128], [4]  the padded ids tokenizer k gives (k = 1..4:
                                                      tokenizer, _2, _3, _4) and the count of prompt
                                                      tokens before the padding: for feeding the
                                                      encoders without the tokenizers
    latents                         F32 [4, 8, 8]     the initial noise
    final_latents, pixels           F32               the 64x64 CFG run (case 0 as the prompt,
                                                      case 1 as the negative prompt, 4 steps,
                                                      guidance 3): output_type "latent", and
                                                      round(output_type "np" x 255) as [3, 64, 64]
  fixture.json                      cases, run settings, versions

Rerun: python3 tools/make_hidream_text_fixture.py [--tokenizers DIR]
(needs torch, transformers, diffusers, tokenizers; DIR defaults to tests/fixtures/tokenizers)
"""
import argparse
import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_common as common  # noqa: E402
import diffusers  # noqa: E402
import transformers  # noqa: E402
from diffusers import HiDreamImagePipeline  # noqa: E402
from transformers import (CLIPTextConfig, CLIPTextModelWithProjection, LlamaConfig, LlamaForCausalLM,  # noqa: E402
                          T5Config, T5EncoderModel)

FIXTURE = os.path.join(common.FIXTURES, "hidream_text")
MODEL = os.path.join(common.ROOT, "models", "tiny-random")
SEED = 57
SIZE, STEPS, GUIDANCE, TOKENS = 64, 4, 3.0, 128
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
TOKENIZERS = {"tokenizer": "clip", "tokenizer_2": "clip2", "tokenizer_3": "t5", "tokenizer_4": "llama3"}

# (prompt, prompt_2, prompt_3, prompt_4): None = the pipeline's default (prompt).
CASES = [
    ("a red circle on a blue background", None, None, None),
    ("blurry, low quality, watermark", None, None, None),
    ("", None, None, None),
    (" ".join(["a small green triangle above a large yellow square, in soft morning light"] * 12), None, None, None),
    ("a cat", "a dog on a sofa", "ein Haus am See", "Ünïcödé café in 東京, 3 cups of tea!"),
]


def special_id(tok_dir, key):
    with open(os.path.join(tok_dir, "tokenizer_config.json")) as f:
        config = json.load(f)
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tok_dir)
    return tok.convert_tokens_to_ids(config[key] if isinstance(config[key], str) else config[key]["content"])


def write_tokenizers(source):
    for name, folder in TOKENIZERS.items():
        os.makedirs(os.path.join(FIXTURE, name))
        for fn in TOKENIZER_FILES:
            path = os.path.join(source, folder, fn)
            if os.path.exists(path):
                shutil.copyfile(path, os.path.join(FIXTURE, name, fn))


def encoders():
    from transformers import AutoTokenizer
    clip_dir = os.path.join(FIXTURE, "tokenizer")
    clip_tok = AutoTokenizer.from_pretrained(clip_dir)
    llama_tok = AutoTokenizer.from_pretrained(os.path.join(FIXTURE, "tokenizer_4"))
    t5_tok = AutoTokenizer.from_pretrained(os.path.join(FIXTURE, "tokenizer_3"))
    clip = dict(vocab_size=len(clip_tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=TOKENS, projection_dim=16,
                bos_token_id=clip_tok.bos_token_id, eos_token_id=clip_tok.eos_token_id,
                pad_token_id=clip_tok.pad_token_id)
    return {
        "text_encoder": CLIPTextModelWithProjection(CLIPTextConfig(**clip)),
        "text_encoder_2": CLIPTextModelWithProjection(CLIPTextConfig(**clip)),
        "text_encoder_3": T5EncoderModel(T5Config(vocab_size=len(t5_tok), d_model=32, d_kv=8, d_ff=64, num_layers=2,
                                                  num_heads=4, relative_attention_num_buckets=8,
                                                  feed_forward_proj="gated-gelu", pad_token_id=t5_tok.pad_token_id,
                                                  eos_token_id=t5_tok.eos_token_id)),
        "text_encoder_4": LlamaForCausalLM(LlamaConfig(
            vocab_size=len(llama_tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
            bos_token_id=llama_tok.bos_token_id, eos_token_id=llama_tok.eos_token_id, tie_word_embeddings=True,
            rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 64})),
    }


def write_encoders(modules):
    for name, model in modules.items():
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn_like(p) * (0.3 if p.ndim == 2 else 0.1) + (1.0 if p.ndim == 1 else 0.0))
        common.round_parameters_(model, torch.bfloat16)
        model.to(torch.bfloat16).save_pretrained(os.path.join(FIXTURE, name), safe_serialization=True)
        for extra in ("generation_config.json",):
            path = os.path.join(FIXTURE, name, extra)
            if os.path.exists(path):
                os.remove(path)


def write_model_folder():
    for part in ("transformer", "vae", "scheduler"):
        os.symlink(os.path.relpath(os.path.join(MODEL, part), FIXTURE), os.path.join(FIXTURE, part))
    index = {"_class_name": "HiDreamImagePipeline", "_diffusers_version": diffusers.__version__,
             "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"], "vae": ["diffusers", "AutoencoderKL"],
             "transformer": ["diffusers", "HiDreamImageTransformer2DModel"],
             "text_encoder": ["transformers", "CLIPTextModelWithProjection"],
             "tokenizer": ["transformers", "CLIPTokenizer"],
             "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
             "tokenizer_2": ["transformers", "CLIPTokenizer"],
             "text_encoder_3": ["transformers", "T5EncoderModel"], "tokenizer_3": ["transformers", "T5Tokenizer"],
             "text_encoder_4": ["transformers", "LlamaForCausalLM"],
             "tokenizer_4": ["transformers", "PreTrainedTokenizerFast"]}
    with open(os.path.join(FIXTURE, "model_index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")


def padded_ids(pipe, case):
    """What each tokenizer hands its encoder in encode_prompt: ids padded to max_length, and the
    number of prompt tokens (attention_mask's ones)."""
    prompt = case[0]
    ids, valid = [], []
    for k, tok in enumerate((pipe.tokenizer, pipe.tokenizer_2, pipe.tokenizer_3, pipe.tokenizer_4)):
        text = case[k] or prompt
        length = min(TOKENS, 218) if k < 2 else min(TOKENS, tok.model_max_length)
        out = tok(text, padding="max_length", max_length=length, truncation=True, return_tensors="pt")
        ids.append(out.input_ids[0].to(torch.int32))
        valid.append(min(len(tok(text).input_ids), length))
    return ids, torch.tensor(valid, dtype=torch.int32)


@torch.no_grad()
def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizers", default=os.path.join(common.FIXTURES, "tokenizers"))
    args = parser.parse_args()
    common.setup_determinism()
    torch.manual_seed(SEED)
    if os.path.isdir(FIXTURE) or os.path.islink(FIXTURE):
        shutil.rmtree(FIXTURE)
    os.makedirs(FIXTURE)
    write_tokenizers(args.tokenizers)
    write_encoders(encoders())
    write_model_folder()

    pipe = HiDreamImagePipeline.from_pretrained(FIXTURE, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    pipe.default_sample_size = SIZE // pipe.vae_scale_factor
    tensors = {}
    for c, case in enumerate(CASES):
        t5, _, llama, _, pooled, _ = pipe.encode_prompt(
            prompt=case[0], prompt_2=case[1], prompt_3=case[2], prompt_4=case[3], do_classifier_free_guidance=False,
            max_sequence_length=TOKENS)
        tensors[f"case_{c}_prompt_embeds_t5"] = t5[0].contiguous()
        tensors[f"case_{c}_prompt_embeds_llama3"] = llama[:, 0].contiguous()
        tensors[f"case_{c}_pooled_prompt_embeds"] = pooled[0].contiguous()
        ids, valid = padded_ids(pipe, case)
        for k in range(4):
            tensors[f"case_{c}_ids_{k + 1}"] = ids[k].contiguous()
        tensors[f"case_{c}_valid"] = valid

    noise = torch.randn((4, SIZE // 8, SIZE // 8), generator=torch.Generator().manual_seed(SEED + 1))
    run = dict(prompt=CASES[0][0], negative_prompt=CASES[1][0], height=SIZE, width=SIZE, num_inference_steps=STEPS,
               guidance_scale=GUIDANCE, max_sequence_length=TOKENS, return_dict=False)
    latents = pipe(latents=noise[None].clone(), output_type="latent", **run)[0][0]
    image = pipe(latents=noise[None].clone(), output_type="np", **run)[0][0]
    pixels = torch.from_numpy((image * 255).round()).permute(2, 0, 1).contiguous().float()
    assert torch.isfinite(latents).all()
    tensors.update(latents=noise.contiguous(), final_latents=latents.contiguous(), pixels=pixels)
    save_file(tensors, os.path.join(FIXTURE, "io.safetensors"))
    common.write_info(FIXTURE, {
        "generator": "tools/make_hidream_text_fixture.py", "seed": SEED, "torch": torch.__version__,
        "transformers": transformers.__version__, "diffusers": diffusers.__version__,
        "cases": [{"prompt": c[0], "prompt_2": c[1], "prompt_3": c[2], "prompt_4": c[3]} for c in CASES],
        "run": {"prompt_case": 0, "negative_prompt_case": 1, "height": SIZE, "width": SIZE, "steps": STEPS,
                "guidance_scale": GUIDANCE, "max_sequence_length": TOKENS}})
    total = common.list_files(FIXTURE, 60)
    print(f"{total} B; final latents max {latents.abs().max():.3f}")


if __name__ == "__main__":
    sys.exit(main())
