#!/usr/bin/env python3
"""The transformers baseline of `moedit bench-text`: HiDream-I1's four text encoders with random
weights, built from a model folder's configs (tools/make_hidream_shape_model.py), in bfloat16 on
the GPU, timed over the prompt and the negative prompt as HiDreamImagePipeline.encode_prompt runs
them for CFG.

For each encoder, alone on the device (built, timed, freed before the next):
  ids      the folder's tokenizer, padded as the pipeline pads (pipeline_hidream_image.py):
           CLIP to min(M, 218) with the pad token, T5 and Llama to min(M, model_max_length) with
           the attention mask (the Llama's pad token is its eos, as the pipeline sets it);
           M = --max-sequence-length (128). Tokenizing is not timed (moedit's figure includes it:
           microseconds).
  model    CLIPTextModelWithProjection, T5EncoderModel, LlamaForCausalLM from the config, torch's
           default initialisation (speed only), bf16, attention "sdpa" where the class has it.
  pass     both prompts, one batch-1 call each as encode_prompt makes them:
             CLIP:  text_encoder(ids, output_hidden_states=True)
             T5:    text_encoder_3(ids, attention_mask=mask)
             Llama: "pipeline": text_encoder_4(ids, attention_mask=mask, output_hidden_states=True,
                     output_attentions=True) (LM head included, as the pipeline runs it);
                    "model": text_encoder_4.model(ids, attention_mask=mask, output_hidden_states=True)
                     (no LM head: the least work transformers needs for the hidden states).
                    The baseline figure is the faster of the two.
           outputs stay on the GPU (moedit's pass also copies them to the host: not counted for it).
  timing   --warmup untimed passes, then --iterations timed ones (CUDA synchronized), median.
  memory   torch.cuda.max_memory_allocated from construction to the end (weights + activations).

Prints one JSON line (and writes it to --out if given), with the sum of the four medians.
usage: python3 tools/bench_text_encoders.py --model DIR [--device cuda] [--warmup 2] [--iterations 5]
"""
import argparse
import gc
import json
import os
import statistics
import sys
import time

import torch

NAMES = ("clip_l", "clip_g", "t5", "llama")
FOLDERS = ("text_encoder", "text_encoder_2", "text_encoder_3", "text_encoder_4")
TOKENIZERS = ("tokenizer", "tokenizer_2", "tokenizer_3", "tokenizer_4")
CLIP_MAX_LENGTH = 218  # HiDreamImagePipeline._get_clip_prompt_embeds' cap


def load_tokenizer(model_dir, k):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(os.path.join(model_dir, TOKENIZERS[k]))
    if k == 3:
        tok.pad_token = tok.eos_token  # as HiDreamImagePipeline.__init__ sets it
    return tok


def padded(tok, k, text, max_sequence_length, device):
    """ids [1, L] and mask [1, L] as encode_prompt makes them for encoder k."""
    limit = CLIP_MAX_LENGTH if k < 2 else tok.model_max_length
    out = tok(text, padding="max_length", max_length=min(max_sequence_length, limit), truncation=True,
              add_special_tokens=True, return_tensors="pt")
    return out.input_ids.to(device), out.attention_mask.to(device)


def model_class(k):
    from transformers import CLIPTextModelWithProjection, LlamaForCausalLM, T5EncoderModel
    return (CLIPTextModelWithProjection, CLIPTextModelWithProjection, T5EncoderModel, LlamaForCausalLM)[k]


def build_encoder(model_dir, k, device, dtype=torch.bfloat16, seed=0):
    """Encoder k with torch's default random init, on device in dtype; sdpa attention when the
    class has it."""
    from transformers import AutoConfig
    config = AutoConfig.from_pretrained(os.path.join(model_dir, FOLDERS[k]))
    cls = model_class(k)
    torch.manual_seed(seed + k)
    with torch.device(device):
        try:
            model = cls._from_config(config, attn_implementation="sdpa", dtype=dtype)
        except Exception:  # no sdpa for this class (or an older keyword): its default attention
            try:
                model = cls._from_config(config, dtype=dtype)
            except TypeError:
                model = cls._from_config(config, torch_dtype=dtype)
    return model.to(dtype).eval().requires_grad_(False)


def encoder_pass(model, k, inputs, llama_mode):
    """One pass over every prompt's (ids, mask), as encode_prompt calls encoder k."""
    for ids, mask in inputs:
        if k < 2:
            model(ids, output_hidden_states=True)
        elif k == 2:
            model(ids, attention_mask=mask)
        elif llama_mode == "pipeline":
            model(ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
        else:
            model.model(ids, attention_mask=mask, output_hidden_states=True)


def synchronize(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, warmup, iterations, device):
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(1e3 * (time.perf_counter() - start))
    return times


def summary(times):
    ordered = sorted(times)
    return {"ms_median": round(statistics.median(ordered), 3), "ms_min": round(ordered[0], 3),
            "ms_max": round(ordered[-1], 3)}


@torch.no_grad()
def bench_encoder(args, k, prompts):
    cuda = args.device.startswith("cuda")
    tok = load_tokenizer(args.model, k)
    inputs = [padded(tok, k, text, args.max_sequence_length, args.device) for text in prompts]
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    model = build_encoder(args.model, k, args.device, seed=args.seed)
    synchronize(args.device)
    result = {"tokens": int(inputs[0][0].shape[1]), "build_seconds": round(time.perf_counter() - start, 3),
              "parameters": sum(p.numel() for p in model.parameters()),
              "attention": getattr(model.config, "_attn_implementation", None)}
    modes = ("pipeline", "model") if k == 3 else (None,)
    for mode in modes:
        times = timed(lambda: encoder_pass(model, k, inputs, mode), args.warmup, args.iterations, args.device)
        result[mode or "pass"] = summary(times)
    result["ms_median"] = min(result[m or "pass"]["ms_median"] for m in modes)
    if cuda:
        result["peak_bytes"] = torch.cuda.max_memory_allocated()
    del model
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return result


def shape_model_parser(doc):
    """The options both HiDream-shape benchmarks take (this one and bench_hidream_e2e.py)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a folder from tools/make_hidream_shape_model.py")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--prompt", default="A cat holding a sign that says \"Hi-Dreams.ai\".")
    parser.add_argument("--negative-prompt", default="")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the JSON line to this file")
    return parser


def main():
    parser = shape_model_parser(__doc__)
    parser.add_argument("--max-sequence-length", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--only", choices=NAMES, action="append", help="these encoders only (default: all four)")
    args = parser.parse_args()
    import transformers
    prompts = [args.prompt, args.negative_prompt]
    encoders = {}
    for k, name in enumerate(NAMES):
        if args.only and name not in args.only:
            continue
        encoders[name] = bench_encoder(args, k, prompts)
        print(f"transformers {name}: {encoders[name]['ms_median']:.2f} ms per pass", file=sys.stderr, flush=True)
    result = {"what": "transformers text encoders", "device": args.device, "dtype": "bfloat16", "prompts": len(prompts),
              "warmup": args.warmup, "iterations": args.iterations, "encoders": encoders,
              "total_ms_median": round(sum(e["ms_median"] for e in encoders.values()), 3),
              "torch": torch.__version__, "transformers": transformers.__version__,
              "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None}
    line = json.dumps(result)
    print(line, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
