#!/usr/bin/env python3
"""A HiDream-I1-Full-shaped model folder without weights, for benchmarks with random weights
(`moedit generate|bench-text --random-weights`, tools/bench_text_encoders.py,
tools/bench_hidream_e2e.py): every component's config, and small real-format tokenizers.

  model_index.json            HiDreamImagePipeline's components (as HiDream-I1-Full lists them)
  transformer/config.json     HiDreamImageTransformer2DModel: tools/configs/hidream_i1_full_transformer.json
                              (16 double + 32 single blocks, 20 heads x 128, 4 routed experts top-2,
                              caption_channels [4096, 4096], text_emb_dim 2048, llama_layers 0..31
                              then 31 x 16: 17B parameters with the encoders)
  vae/config.json             AutoencoderKL, the FLUX.1 VAE HiDream uses (16 latent channels,
                              block_out_channels [128, 256, 512, 512], 2 layers per block,
                              scaling_factor 0.3611, shift_factor 0.1159, no quant convs)
  scheduler/scheduler_config.json  UniPCMultistepScheduler for flow matching as I1-Full ships it
                              (prediction_type flow_prediction, use_flow_sigmas, flow_shift 3,
                              solver_order 2, bh2)
  text_encoder/               CLIPTextModelWithProjection, CLIP-L: hidden 768, 12 layers, 12 heads,
                              intermediate 3072, projection 768, quick_gelu, 248 positions (Long-CLIP)
  text_encoder_2/             CLIP-G: hidden 1280, 32 layers, 20 heads, intermediate 5120,
                              projection 1280, gelu, 248 positions
  text_encoder_3/             T5EncoderModel, T5 v1.1 XXL: d_model 4096, d_kv 64, 64 heads,
                              d_ff 10240, 24 layers, gated-gelu, vocab 32128
  text_encoder_4/             LlamaForCausalLM, Llama-3.1-8B(-Instruct): hidden 4096, 32 layers,
                              32 heads, 8 kv heads, intermediate 14336, rope_theta 500000, llama3 RoPE
                              scaling (factor 8, low 1, high 4, original 8192), vocab 128256
  tokenizer/ .. tokenizer_4/  copies of tests/fixtures/tokenizers/{clip, clip2, t5, llama3}: the
                              trained-here tokenizers in the real formats (CLIP vocab.json +
                              merges.txt, T5 Unigram and Llama 3 BPE tokenizer.json), small
                              vocabularies whose ids lie inside the real vocab sizes above, so
                              every id is valid for the real-shape embedding tables. Timing does
                              not depend on which ids; prompts are padded to the same 128 tokens.

Where the values come from. The transformer config is the one the project's GPU benchmarks
already use (docs/benchmarks.md, tools/configs/). The text side follows the configs published
with HiDream-ai/HiDream-I1-Full (text_encoder, text_encoder_2: CLIPTextModelWithProjection with
max_position_embeddings 248; text_encoder_3: google/t5-v1_1-xxl's encoder) and
meta-llama/Llama-3.1-8B-Instruct (HiDream's text_encoder_4, a separate download in diffusers'
example). Cross-checked against what the stored references hold:
  - diffusers' HiDreamImagePipeline (pipelines/hidream_image/pipeline_hidream_image.py, 0.42.1):
    CLIP ids padded to min(max_sequence_length, 218) (Long-CLIP's 248 positions cover them),
    T5 and Llama to min(max_sequence_length, model_max_length), Llama hidden_states[1:] (32
    layers), pooled = CLIP-L 768 + CLIP-G 1280 = text_emb_dim 2048; its example loads
    "HiDream-ai/HiDream-I1-Full" with "meta-llama/Meta-Llama-3.1-8B-Instruct" and runs
    1024x1024, guidance_scale 5.0, 50 steps.
  - The CLIP-G text config (hidden 1280, intermediate 5120, 32 layers, 20 heads, gelu,
    projection 1280, vocab 49408) is the OpenCLIP bigG text tower's as diffusers checkpoints
    save it (e.g. huggingface.co/.../text_encoder_2/config.json of SDXL pipelines in the
    search tool's docs corpus), with HiDream's 248 positions.
  - UniPC for flow matching with flow_shift 3 (tools/make_scheduler_runs.py "hidream_full",
    tests/fixtures/scheduler_runs/hidream_full/scheduler_config.json, saved by diffusers 0.42.1).
  - The FLUX.1 VAE config: tools/bench_diffusers.py FLUX_VAE (docs/benchmarks.md).
  - Llama 3.1 8B: the llama3 RoPE parameters of text/text_encoder.h and
    tools/make_llama3_fixture.py; 128256 vocabulary, GQA 32/8, intermediate 14336.
The real checkpoints cannot be fetched here (tens of GB); with random weights only the shapes
matter, and they are the ones above.

--scale tiny writes the same layout with tiny sizes (widths 32, 2 layers; the tiny transformer
and VAE of models/tiny-random, caption channels 32 + 32, text_emb_dim 16 + 16) for a quick CPU
check of the same code paths.

usage: python3 tools/make_hidream_shape_model.py OUT_DIR [--scale full|tiny]
(needs only the Python standard library)
"""
import argparse
import copy
import json
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZERS = os.path.join(ROOT, "tests", "fixtures", "tokenizers")
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
TOKENIZER_DIRS = {"tokenizer": "clip", "tokenizer_2": "clip2", "tokenizer_3": "t5", "tokenizer_4": "llama3"}

FLUX_VAE = {
    "_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
    "force_upcast": True, "in_channels": 3, "out_channels": 3, "latent_channels": 16, "latents_mean": None,
    "latents_std": None, "layers_per_block": 2, "mid_block_add_attention": True, "norm_num_groups": 32,
    "sample_size": 1024, "scaling_factor": 0.3611, "shift_factor": 0.1159, "use_post_quant_conv": False,
    "use_quant_conv": False,
}

UNIPC_FLOW = {
    "_class_name": "UniPCMultistepScheduler", "beta_end": 0.02, "beta_schedule": "linear", "beta_start": 0.0001,
    "disable_corrector": [], "dynamic_thresholding_ratio": 0.995, "final_sigmas_type": "zero", "flow_shift": 3.0,
    "lower_order_final": True, "num_train_timesteps": 1000, "predict_x0": True, "prediction_type": "flow_prediction",
    "rescale_betas_zero_snr": False, "sample_max_value": 1.0, "solver_order": 2, "solver_p": None,
    "solver_type": "bh2", "steps_offset": 0, "thresholding": False, "timestep_spacing": "linspace",
    "trained_betas": None, "use_beta_sigmas": False, "use_dynamic_shifting": False, "use_exponential_sigmas": False,
    "use_flow_sigmas": True, "use_karras_sigmas": False,
}

CLIP_COMMON = {
    "architectures": ["CLIPTextModelWithProjection"], "model_type": "clip_text_model", "attention_dropout": 0.0,
    "dropout": 0.0, "initializer_factor": 1.0, "initializer_range": 0.02, "layer_norm_eps": 1e-05,
    "max_position_embeddings": 248, "vocab_size": 49408, "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
    "torch_dtype": "bfloat16",
}
CLIP_L = dict(CLIP_COMMON, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              projection_dim=768, hidden_act="quick_gelu")
CLIP_G = dict(CLIP_COMMON, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
              projection_dim=1280, hidden_act="gelu")

T5_XXL = {
    "architectures": ["T5EncoderModel"], "model_type": "t5", "d_model": 4096, "d_kv": 64, "d_ff": 10240,
    "num_layers": 24, "num_decoder_layers": 24, "num_heads": 64, "vocab_size": 32128,
    "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128, "dropout_rate": 0.1,
    "layer_norm_epsilon": 1e-06, "initializer_factor": 1.0, "feed_forward_proj": "gated-gelu",
    "dense_act_fn": "gelu_new", "is_gated_act": True, "is_encoder_decoder": True, "tie_word_embeddings": False,
    "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0, "torch_dtype": "bfloat16",
}

LLAMA_31_8B = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
    "hidden_act": "silu", "attention_bias": False, "attention_dropout": 0.0, "mlp_bias": False,
    "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "vocab_size": 128256, "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
    "tie_word_embeddings": False, "initializer_range": 0.02, "pretraining_tp": 1, "use_cache": True,
    "torch_dtype": "bfloat16",
}

MODEL_INDEX = {
    "_class_name": "HiDreamImagePipeline", "_diffusers_version": "0.42.1",
    "scheduler": ["diffusers", "UniPCMultistepScheduler"], "vae": ["diffusers", "AutoencoderKL"],
    "transformer": ["diffusers", "HiDreamImageTransformer2DModel"],
    "text_encoder": ["transformers", "CLIPTextModelWithProjection"], "tokenizer": ["transformers", "CLIPTokenizer"],
    "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"], "tokenizer_2": ["transformers", "CLIPTokenizer"],
    "text_encoder_3": ["transformers", "T5EncoderModel"], "tokenizer_3": ["transformers", "T5Tokenizer"],
    "text_encoder_4": ["transformers", "LlamaForCausalLM"], "tokenizer_4": ["transformers", "PreTrainedTokenizerFast"],
}


def full_configs():
    with open(os.path.join(ROOT, "tools", "configs", "hidream_i1_full_transformer.json")) as f:
        transformer = {k: v for k, v in json.load(f).items() if k != "_comment"}
    transformer["_diffusers_version"] = "0.42.1"
    return {"transformer": transformer, "vae": FLUX_VAE, "scheduler": UNIPC_FLOW, "text_encoder": CLIP_L,
            "text_encoder_2": CLIP_G, "text_encoder_3": T5_XXL, "text_encoder_4": LLAMA_31_8B}


def tiny_configs():
    """The same layout at tiny sizes: models/tiny-random's transformer (caption channels 32 + 32,
    text_emb_dim 32, llama_layers [0, 1]) and VAE, encoders of width 32 and 2 layers."""
    tiny = os.path.join(ROOT, "models", "tiny-random")
    with open(os.path.join(tiny, "transformer", "config.json")) as f:
        transformer = json.load(f)
    with open(os.path.join(tiny, "vae", "config.json")) as f:
        vae = json.load(f)
    clip = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, projection_dim=16)
    configs = full_configs()
    configs.update(transformer=transformer, vae=vae,
                   text_encoder=dict(CLIP_L, **clip), text_encoder_2=dict(CLIP_G, **clip),
                   text_encoder_3=dict(T5_XXL, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                                       num_heads=4, relative_attention_num_buckets=8),
                   text_encoder_4=dict(LLAMA_31_8B, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2, head_dim=8))
    return configs


def write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--scale", choices=["full", "tiny"], default="full")
    args = parser.parse_args()
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    configs = full_configs() if args.scale == "full" else tiny_configs()
    for name, config in configs.items():
        file = "scheduler_config.json" if name == "scheduler" else "config.json"
        write_json(os.path.join(args.out, name, file), copy.deepcopy(config))
    write_json(os.path.join(args.out, "model_index.json"), MODEL_INDEX)
    for name, source in TOKENIZER_DIRS.items():
        os.makedirs(os.path.join(args.out, name))
        for fn in TOKENIZER_FILES:
            path = os.path.join(TOKENIZERS, source, fn)
            if os.path.exists(path):
                shutil.copyfile(path, os.path.join(args.out, name, fn))
    print(f"wrote {args.out} ({args.scale} HiDream-I1-Full shape, configs and tokenizers, no weights)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
