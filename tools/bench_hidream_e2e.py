#!/usr/bin/env python3
"""The diffusers baseline of `moedit generate --random-weights` end to end: HiDreamImagePipeline
on random components of a model folder (tools/make_hidream_shape_model.py, the HiDream-I1-Full
shape), every component on the GPU in bfloat16, from prompt to PNG file.

  components  transformer (HiDreamImageTransformer2DModel), vae (AutoencoderKL) and the four text
              encoders built from the folder's configs with torch's default random init directly
              on the device (tools/bench_text_encoders.py build_encoder; sdpa attention), the
              scheduler (UniPCMultistepScheduler) and the four tokenizers from the folder; all
              resident at once (diffusers' fastest way, no offload).
  warm-up     one untimed call of --warmup-steps steps (default 2) at the same size, so that the
              timed call does not pay CUDA/cuBLAS/cuDNN first-use costs (moedit's figure is a cold
              process: this favours diffusers).
  timed       pipe(prompt, negative_prompt=..., height, width, num_inference_steps, guidance_scale,
              max_sequence_length=128, generator) -> PIL image, then image.save(PNG): seconds from
              the call to the file written (encode_prompt, 50 UniPC steps with CFG, VAE decode).
  memory      torch.cuda.max_memory_allocated and max_memory_reserved over the whole script
              (construction included; the peak is all components resident plus the activations).

Prints one JSON line (and writes it to --out).
usage: python3 tools/bench_hidream_e2e.py --model DIR --output out.png [--height 1024 --width 1024]
       [--steps 50] [--guidance 5]
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_text_encoders import build_encoder, load_tokenizer, shape_model_parser  # noqa: E402


def read_config(model_dir, folder, file="config.json"):
    with open(os.path.join(model_dir, folder, file)) as f:
        return {k: v for k, v in json.load(f).items() if not k.startswith("_")}


def build_pipeline(model_dir, device, dtype, seed):
    from diffusers import AutoencoderKL, HiDreamImagePipeline, HiDreamImageTransformer2DModel, UniPCMultistepScheduler
    torch.manual_seed(seed)
    with torch.device(device):
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            transformer = HiDreamImageTransformer2DModel(**read_config(model_dir, "transformer")).eval()
            vae = AutoencoderKL(**read_config(model_dir, "vae")).eval()
        finally:
            torch.set_default_dtype(previous)
    transformer.requires_grad_(False)
    vae.requires_grad_(False)
    scheduler = UniPCMultistepScheduler.from_config(read_config(model_dir, "scheduler", "scheduler_config.json"))
    encoders = [build_encoder(model_dir, k, device, dtype, seed) for k in range(4)]
    tokenizers = [load_tokenizer(model_dir, k) for k in range(4)]
    pipe = HiDreamImagePipeline(scheduler=scheduler, vae=vae, text_encoder=encoders[0], tokenizer=tokenizers[0],
                                text_encoder_2=encoders[1], tokenizer_2=tokenizers[1], text_encoder_3=encoders[2],
                                tokenizer_3=tokenizers[2], text_encoder_4=encoders[3], tokenizer_4=tokenizers[3],
                                transformer=transformer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run(pipe, args, steps, path):
    generator = torch.Generator(args.device).manual_seed(args.seed)
    image = pipe(args.prompt, negative_prompt=args.negative_prompt, height=args.height, width=args.width,
                 num_inference_steps=steps, guidance_scale=args.guidance, max_sequence_length=128,
                 generator=generator).images[0]
    if path:
        image.save(path)
    return image


@torch.no_grad()
def main():
    parser = shape_model_parser(__doc__)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--warmup-steps", type=int, default=2, help="steps of the untimed first call (0: none)")
    parser.add_argument("--output", default="diffusers_e2e.png")
    args = parser.parse_args()
    import diffusers
    import transformers
    cuda = args.device.startswith("cuda")
    dtype = torch.bfloat16
    start = time.perf_counter()
    pipe = build_pipeline(args.model, args.device, dtype, args.seed)
    if cuda:
        torch.cuda.synchronize()
    build_seconds = time.perf_counter() - start
    print(f"diffusers: components built in {build_seconds:.1f} s", file=sys.stderr, flush=True)
    warmup_seconds = 0.0
    if args.warmup_steps > 0:
        start = time.perf_counter()
        run(pipe, args, args.warmup_steps, None)
        if cuda:
            torch.cuda.synchronize()
        warmup_seconds = time.perf_counter() - start
        print(f"diffusers: warm-up ({args.warmup_steps} steps) {warmup_seconds:.1f} s", file=sys.stderr, flush=True)
    start = time.perf_counter()
    run(pipe, args, args.steps, args.output)  # the PIL image is on the host: the GPU is done
    seconds = time.perf_counter() - start
    parameters = {name: sum(p.numel() for p in getattr(pipe, name).parameters())
                  for name in ("transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3",
                               "text_encoder_4")}
    result = {"what": "diffusers HiDreamImagePipeline end to end", "device": args.device, "dtype": "bfloat16",
              "height": args.height, "width": args.width, "steps": args.steps, "guidance_scale": args.guidance,
              "max_sequence_length": 128, "prompt_to_png_seconds": round(seconds, 3),
              "build_seconds": round(build_seconds, 3), "warmup_seconds": round(warmup_seconds, 3),
              "warmup_steps": args.warmup_steps, "parameters": parameters, "output": args.output,
              "torch": torch.__version__, "diffusers": diffusers.__version__,
              "transformers": transformers.__version__}
    if cuda:
        result.update(peak_allocated_bytes=torch.cuda.max_memory_allocated(),
                      peak_reserved_bytes=torch.cuda.max_memory_reserved(), gpu=torch.cuda.get_device_name())
    line = json.dumps(result)
    print(line, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
