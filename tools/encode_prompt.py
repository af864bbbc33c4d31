#!/usr/bin/env python3
"""Prompt embeddings for `moedit generate --prompt-embeds FILE` from a HiDream-I1
model's own text encoders, through diffusers' HiDreamImagePipeline.encode_prompt.

moedit's native text encoder is a small Llama-style model (models/demo); a real
HiDream-I1 checkpoint conditions on four encoders (two CLIPs for the pooled
vector, T5 and Llama 3.1 for the token embeddings), which run here in PyTorch.
The file holds the tensors moedit reads (DESIGN.md, "Model format"):
    prompt_embeds_t5 [1, L, C0], prompt_embeds_llama3 [layers, 1, L, C1],
    pooled_prompt_embeds [1, P], and their negative_* twins (CFG's
    unconditional branch; left out with --no-negative, for guidance 1).

    python3 tools/encode_prompt.py --model HiDream-I1-Full --llama Meta-Llama-3.1-8B-Instruct \\
        --prompt "a cat holding a sign" --output embeds.safetensors
    build/moedit generate --model HiDream-I1-Full --prompt-embeds embeds.safetensors --output cat.png

--model is the diffusers directory (text_encoder, tokenizer, text_encoder_2,
tokenizer_2, text_encoder_3, tokenizer_3); the Llama encoder is read from
--llama, or from the model's text_encoder_4 and tokenizer_4 when it has them.
Needs torch, transformers and diffusers (pip install torch transformers diffusers
safetensors sentencepiece protobuf). The file is written to a temporary name and
renamed, so a failed run leaves nothing behind.
"""
import argparse
import json
import os
import sys
import tempfile

COMPONENTS = ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "text_encoder_3", "tokenizer_3")


def parse_args(argv):
    p = argparse.ArgumentParser(prog="encode_prompt.py",
                                description="HiDream-I1 prompt embeddings for moedit generate --prompt-embeds")
    p.add_argument("--model", required=True, help="diffusers HiDream-I1 directory")
    p.add_argument("--llama", help="Llama 3.1 directory (default: MODEL/text_encoder_4 and MODEL/tokenizer_4)")
    p.add_argument("--prompt", required=True)
    p.add_argument("--negative-prompt", default="", help='the unconditional prompt (default "")')
    p.add_argument("--no-negative", action="store_true", help="no negative_* tensors (runs with guidance 1)")
    p.add_argument("--max-sequence-length", type=int, default=128, help="T5 and Llama tokens (default 128)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--dtype", default="auto", choices=("auto", "bfloat16", "float32"),
                   help="encoders' dtype (auto: bfloat16 on cuda, float32 on cpu)")
    p.add_argument("--output", required=True, help="FILE.safetensors")
    args = p.parse_args(argv)
    if args.max_sequence_length < 1:
        p.error("--max-sequence-length must be positive")
    if not args.output.endswith(".safetensors"):
        p.error("--output must end in .safetensors")
    # Checked before the encoders load (an 8B Llama takes minutes): where the file goes must be a writable directory.
    directory = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        p.error(f"--output {args.output}: {directory} is not a writable directory")
    if os.path.isdir(args.output):
        p.error(f"--output {args.output} is a directory")
    return args


def component_dirs(args):
    """Every encoder and tokenizer directory by its pipeline name; a missing one is an error naming it."""
    dirs = {name: os.path.join(args.model, name) for name in COMPONENTS}
    llama = args.llama
    dirs["text_encoder_4"] = llama or os.path.join(args.model, "text_encoder_4")
    dirs["tokenizer_4"] = llama or os.path.join(args.model, "tokenizer_4")
    for name, path in dirs.items():
        if not os.path.isdir(path):
            hint = " (give --llama DIR: HiDream-I1 ships without it)" if name.endswith("_4") and not llama else ""
            raise SystemExit(f"encode_prompt.py: error: {path}: no such directory for {name}{hint}")
    return dirs


def load_pipeline(dirs, device, dtype):
    import torch  # noqa: F401 (imported here so --help works without it)
    import diffusers
    import transformers
    from diffusers import HiDreamImagePipeline
    from transformers import (AutoTokenizer, CLIPTextModelWithProjection, LlamaForCausalLM, T5EncoderModel)
    for library in (transformers, diffusers):  # errors still raise; progress bars and advice stay off stderr
        library.utils.logging.set_verbosity_error()
        library.utils.logging.disable_progress_bar()
    encoders = {
        "text_encoder": CLIPTextModelWithProjection.from_pretrained(dirs["text_encoder"], torch_dtype=dtype),
        "text_encoder_2": CLIPTextModelWithProjection.from_pretrained(dirs["text_encoder_2"], torch_dtype=dtype),
        "text_encoder_3": T5EncoderModel.from_pretrained(dirs["text_encoder_3"], torch_dtype=dtype),
        # Eager attention, as HiDream's own loading asks for (it wants the attentions output, which sdpa lacks).
        "text_encoder_4": LlamaForCausalLM.from_pretrained(dirs["text_encoder_4"], torch_dtype=dtype,
                                                           attn_implementation="eager"),
    }
    tokenizers = {name: AutoTokenizer.from_pretrained(dirs[name])
                  for name in ("tokenizer", "tokenizer_2", "tokenizer_3", "tokenizer_4")}
    for model in encoders.values():
        model.to(device).eval()
    return HiDreamImagePipeline(scheduler=None, vae=None, transformer=None, **encoders, **tokenizers)


def encode(pipe, args, device):
    import torch
    with torch.no_grad():
        t5, neg_t5, llama, neg_llama, pooled, neg_pooled = pipe.encode_prompt(
            prompt=args.prompt, negative_prompt=args.negative_prompt, device=device,
            do_classifier_free_guidance=not args.no_negative, max_sequence_length=args.max_sequence_length)
    tensors = {"prompt_embeds_t5": t5, "prompt_embeds_llama3": llama, "pooled_prompt_embeds": pooled}
    if not args.no_negative:
        tensors.update({"negative_prompt_embeds_t5": neg_t5, "negative_prompt_embeds_llama3": neg_llama,
                        "negative_pooled_prompt_embeds": neg_pooled})
    return {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}


def write_atomically(tensors, path, metadata):
    from safetensors.torch import save_file
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=".encode_prompt.", suffix=".safetensors", dir=directory)
    os.close(fd)
    try:
        save_file(tensors, temporary, metadata=metadata)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    dirs = component_dirs(args)
    try:
        import torch
        device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("--device cuda: PyTorch sees no GPU")
        dtype_name = args.dtype if args.dtype != "auto" else ("bfloat16" if device == "cuda" else "float32")
        pipe = load_pipeline(dirs, device, getattr(torch, dtype_name))
        tensors = encode(pipe, args, device)
        # One metadata key: safetensors writes several in no fixed order, so the same run would differ in bytes.
        about = {"prompt": args.prompt, "negative_prompt": args.negative_prompt, "encoders_dtype": dtype_name}
        write_atomically(tensors, args.output, {"encode_prompt": json.dumps(about, sort_keys=True)})
    except ImportError as e:
        raise SystemExit(f"encode_prompt.py: error: {e} (pip install torch transformers diffusers safetensors)")
    except (OSError, ValueError, RuntimeError) as e:
        raise SystemExit(f"encode_prompt.py: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    shapes = ", ".join(f"{name} {list(t.shape)}" for name, t in tensors.items())
    print(f"wrote {args.output}: {shapes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
