#!/usr/bin/env python3
"""The fixture of tests/fixtures/pipeline_encoders: diffusers' whole HiDreamImagePipeline,
with HiDream's four text encoders, against which moedit runs on the embeddings
tools/encode_prompt.py writes for it.

It builds tiny random stand-ins of HiDream-I1's text side in a temporary diffusers
directory (text_encoder, text_encoder_2: CLIPTextModelWithProjection; text_encoder_3:
T5EncoderModel; text_encoder_4: LlamaForCausalLM; each with a WordLevel tokenizer of
the shape-scene words), sized for models/tiny-random's transformer (T5 and Llama
width 32, two Llama layers, pooled 16 + 16). Then:
  1. tools/encode_prompt.py on that directory, as a user runs it, writes
     prompt_embeds.safetensors (CFG: with the negative_* tensors);
  2. HiDreamImagePipeline(...) with those encoders, models/tiny-random's
     transformer and VAE, and HiDream-I1-Full's scheduler (UniPCMultistepScheduler,
     flow prediction, flow_shift 3: saved as scheduler/scheduler_config.json), in
     float32, runs the prompt from the initial noise in io.safetensors ("latents")
     with CFG: io.safetensors gets its final latents ("final_latents",
     output_type="latent") and pixels ("pixels", round(output_type="np" x 255)).
tests/test_pipeline_matches_diffusers.c checks that moedit generate with
--prompt-embeds prompt_embeds.safetensors, on models/tiny-random with this
scheduler, reproduces both. The encoders are not kept.

Rerun: python3 tools/make_encoder_fixture.py   (needs torch, transformers, diffusers, tokenizers)
"""
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_common as common  # noqa: E402
import make_text_fixtures as text_fx  # noqa: E402
from diffusers import UniPCMultistepScheduler  # noqa: E402
from transformers import (CLIPTextConfig, CLIPTextModelWithProjection, LlamaConfig, LlamaForCausalLM,  # noqa: E402
                          PreTrainedTokenizerFast, T5Config, T5EncoderModel)

MODEL = os.path.join(common.ROOT, "models", "tiny-random")
FIXTURE = os.path.join(common.FIXTURES, "pipeline_encoders")
SEED = 91
PROMPT = "a red circle on a blue background"
SIZE, STEPS, GUIDANCE, TOKENS = 64, 4, 3.0, 16
PAD, BOS, EOS = 3, 1, 2  # the ids of [PAD], [BOS], [EOS] in text_fx.vocab()


def tokenizer():
    """WordLevel over the shape-scene words, "[BOS] $A [EOS]", padded with [PAD]."""
    tok = Tokenizer(models.WordLevel(text_fx.vocab(), unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[BOS] $A [EOS]",
                                                       special_tokens=[("[BOS]", BOS), ("[EOS]", EOS)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]",
                                   pad_token="[PAD]", model_max_length=512)


def encoders():
    vocab = len(text_fx.vocab())
    clip = dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=64, projection_dim=16, bos_token_id=BOS, eos_token_id=EOS,
                pad_token_id=PAD)
    return {
        "text_encoder": CLIPTextModelWithProjection(CLIPTextConfig(**clip)),
        "text_encoder_2": CLIPTextModelWithProjection(CLIPTextConfig(**clip)),
        "text_encoder_3": T5EncoderModel(T5Config(vocab_size=vocab, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                                                  num_heads=4, relative_attention_num_buckets=8,
                                                  feed_forward_proj="gated-gelu", pad_token_id=PAD,
                                                  eos_token_id=EOS)),
        # eager attention, as tools/encode_prompt.py loads the Llama encoder
        "text_encoder_4": LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64,
                                                       num_hidden_layers=2, num_attention_heads=4,
                                                       num_key_value_heads=2, max_position_embeddings=64,
                                                       attn_implementation="eager", bos_token_id=BOS,
                                                       eos_token_id=EOS, pad_token_id=PAD)),
    }


def write_text_side(directory, modules):
    for name, model in modules.items():
        model.save_pretrained(os.path.join(directory, name), safe_serialization=True)
        tokenizer().save_pretrained(os.path.join(directory, name.replace("text_encoder", "tokenizer")))


@torch.no_grad()
def reference(modules, noise):
    tokenizers = {name.replace("text_encoder", "tokenizer"): tokenizer() for name in modules}
    scheduler = UniPCMultistepScheduler.from_pretrained(os.path.join(FIXTURE, "scheduler"))
    pipe = common.tiny_hidream_pipeline(scheduler, SIZE, **modules, **tokenizers)
    run = dict(prompt=PROMPT, height=SIZE, width=SIZE, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
               max_sequence_length=TOKENS, return_dict=False)
    latents = pipe(latents=noise[None].clone(), output_type="latent", **run)[0][0]
    image = pipe(latents=noise[None].clone(), output_type="np", **run)[0][0]
    pixels = torch.from_numpy((image * 255).round()).permute(2, 0, 1).contiguous().float()
    return latents, pixels


def main():
    common.setup_determinism()
    torch.manual_seed(SEED)
    modules = {name: m.eval() for name, m in encoders().items()}
    noise = torch.randn((4, SIZE // 8, SIZE // 8), generator=torch.Generator().manual_seed(SEED + 1))
    if os.path.isdir(FIXTURE):
        shutil.rmtree(FIXTURE)
    os.makedirs(FIXTURE)
    UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                            flow_shift=3.0).save_config(os.path.join(FIXTURE, "scheduler"))
    embeds = os.path.join(FIXTURE, "prompt_embeds.safetensors")
    with tempfile.TemporaryDirectory() as text_side:
        write_text_side(text_side, modules)
        subprocess.run([sys.executable, os.path.join(common.ROOT, "tools", "encode_prompt.py"), "--model", text_side,
                        "--prompt", PROMPT, "--max-sequence-length", str(TOKENS), "--device", "cpu", "--dtype",
                        "float32", "--output", embeds], check=True,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))  # one thread: the same bytes every run
    latents, pixels = reference(modules, noise)
    assert torch.isfinite(latents).all()
    save_file({"latents": noise.contiguous(), "final_latents": latents.contiguous(), "pixels": pixels},
              os.path.join(FIXTURE, "io.safetensors"))
    common.write_info(FIXTURE, {"generator": "tools/make_encoder_fixture.py", "scheduler": "UniPCMultistepScheduler",
                                "prompt": PROMPT, "negative_prompt": "",
                                "height": SIZE, "width": SIZE, "steps": STEPS, "guidance_scale": GUIDANCE,
                                "max_sequence_length": TOKENS, "seed": SEED,
                                "embeddings": {k: list(v.shape) for k, v in load_file(embeds).items()}})
    total = common.list_files(FIXTURE, 56)
    print(f"{total} B; final latents max {latents.abs().max():.3f}")


if __name__ == "__main__":
    sys.exit(main())
