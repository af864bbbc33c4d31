#!/usr/bin/env python3
"""The fixture of tests/fixtures/pipeline_lora: diffusers' HiDreamImagePipeline with a LoRA
loaded by its own load_lora_weights, against which moedit runs with --lora.

On models/tiny-random's transformer, PEFT adds a rank-4 LoRA (random factors, alpha = rank)
to the attention projections of both streams and to the experts' and the shared expert's
SwiGLU weights; diffusers' save_lora_weights writes it (lora.safetensors: "transformer.<name>
.lora_A.weight", ".lora_B.weight"). The same adapter is also written in kohya's names with an
alpha (lora_kohya.safetensors: "diffusion_model.<name>.lora_down.weight", ".lora_up.weight"
halved, ".alpha" = 2 x rank), which must give the same weights. A second LoRA
(lora_second.safetensors, to_q, to_k and w3: overlapping the first on to_q) goes with it in
two/io.safetensors: both adapters at once, set_adapters at 0.7 and -0.4.

The reference: a fresh pipeline (tiny-random's transformer, VAE and scheduler, float32),
pipe.load_lora_weights(lora.safetensors), pipe.set_adapters(..., SCALE); then the prompt
embeddings of tests/fixtures/pipeline_encoders from the noise in io.safetensors ("latents") with
CFG: io.safetensors gets the final latents ("final_latents") and pixels ("pixels").
tests/test_pipeline_matches_diffusers.c runs moedit generate --lora FILE --lora-scale SCALE
with each file.

Rerun: python3 tools/make_lora_fixture.py   (needs torch, diffusers, peft, safetensors)
"""
import os
import shutil
import sys

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_common as common  # noqa: E402
from diffusers import FlowMatchEulerDiscreteScheduler, HiDreamImagePipeline, HiDreamImageTransformer2DModel  # noqa: E402
from peft import LoraConfig  # noqa: E402
from peft.utils import get_peft_model_state_dict  # noqa: E402

MODEL = os.path.join(common.ROOT, "models", "tiny-random")
EMBEDS = os.path.join(common.FIXTURES, "pipeline_encoders", "prompt_embeds.safetensors")
FIXTURE = os.path.join(common.FIXTURES, "pipeline_lora")
TWO = os.path.join(FIXTURE, "two")
SEED, SIZE, STEPS, GUIDANCE, SCALE, RANK = 33, 64, 4, 3.0, 0.7, 4
TARGETS = ["to_q", "to_v", "to_out", "to_k_t", "w1", "w2"]
SECOND_TARGETS, SECOND_SCALE = ["to_q", "to_k", "w3"], -0.4  # overlaps the first on to_q


def transformer():
    return HiDreamImageTransformer2DModel.from_pretrained(os.path.join(MODEL, "transformer"),
                                                          torch_dtype=torch.float32).eval()


def write_lora(path_diffusers, path_kohya, targets=TARGETS):
    """A random rank-RANK LoRA of the targets, in diffusers' names and (path_kohya not None) in kohya's."""
    model = transformer()
    model.add_adapter(LoraConfig(r=RANK, lora_alpha=RANK, target_modules=targets, init_lora_weights=False))
    layers = get_peft_model_state_dict(model)
    directory = os.path.dirname(path_diffusers)
    HiDreamImagePipeline.save_lora_weights(directory, transformer_lora_layers=layers,
                                           weight_name=os.path.basename(path_diffusers))
    saved = load_file(path_diffusers)
    assert saved and all(k.startswith("transformer.") for k in saved), list(saved)[:3]
    if path_kohya is None:
        return len(saved) // 2
    kohya = {}
    for name, value in saved.items():
        base = "diffusion_model." + name.removeprefix("transformer.")
        if name.endswith(".lora_A.weight"):
            kohya[base.replace(".lora_A.weight", ".lora_down.weight")] = value
            kohya[base.replace(".lora_A.weight", ".alpha")] = torch.tensor(2.0 * RANK)
        else:
            kohya[base.replace(".lora_B.weight", ".lora_up.weight")] = (value / 2).contiguous()
    save_file(kohya, path_kohya)
    return len(saved) // 2


def pipeline(loras):
    """A fresh float32 pipeline of tiny-random with the LoRAs [(path, scale)] loaded by diffusers."""
    pipe = common.tiny_hidream_pipeline(
        FlowMatchEulerDiscreteScheduler.from_pretrained(os.path.join(MODEL, "scheduler")), SIZE)
    for i, (path, _) in enumerate(loras):
        pipe.load_lora_weights(path, adapter_name=f"lora{i}")
    if loras:
        pipe.set_adapters([f"lora{i}" for i in range(len(loras))], adapter_weights=[scale for _, scale in loras])
    return pipe


@torch.no_grad()
def run(pipe, noise, output_type):
    e = load_file(EMBEDS)  # tools/encode_prompt.py's file: batch dimensions included, as the pipeline takes them
    return pipe(latents=noise[None].clone(), output_type=output_type, height=SIZE, width=SIZE,
                num_inference_steps=STEPS, guidance_scale=GUIDANCE, return_dict=False, **e)[0][0]


def main():
    common.setup_determinism()
    torch.manual_seed(SEED)
    if os.path.isdir(FIXTURE):
        shutil.rmtree(FIXTURE)
    os.makedirs(FIXTURE)
    lora, kohya = os.path.join(FIXTURE, "lora.safetensors"), os.path.join(FIXTURE, "lora_kohya.safetensors")
    pairs = write_lora(lora, kohya)
    noise = torch.randn((4, SIZE // 8, SIZE // 8), generator=torch.Generator().manual_seed(SEED + 1))
    second = os.path.join(FIXTURE, "lora_second.safetensors")
    write_lora(second, None, SECOND_TARGETS)
    plain = run(pipeline([]), noise, "latent")
    moves = []  # how far each reference is from the run without LoRAs
    for loras, directory in (([(lora, SCALE)], FIXTURE), ([(lora, SCALE), (second, SECOND_SCALE)], TWO)):
        pipe = pipeline(loras)
        latents = run(pipe, noise, "latent")
        pixels = torch.from_numpy((run(pipe, noise, "np") * 255).round()).permute(2, 0, 1).contiguous().float()
        os.makedirs(directory, exist_ok=True)
        save_file({"latents": noise.contiguous(), "final_latents": latents.contiguous(), "pixels": pixels},
                  os.path.join(directory, "io.safetensors"))
        moves.append(float((latents - plain).abs().max()))
        assert moves[-1] > 0.05 * plain.abs().max(), "the LoRAs barely change the result"
    common.write_info(FIXTURE, {"generator": "tools/make_lora_fixture.py", "prompt_embeds": "pipeline_encoders",
                                "height": SIZE, "width": SIZE, "steps": STEPS, "guidance_scale": GUIDANCE,
                                "lora_scale": SCALE, "rank": RANK, "pairs": pairs, "targets": TARGETS, "seed": SEED,
                                "two": {"second_targets": SECOND_TARGETS, "second_scale": SECOND_SCALE},
                                "latents_moved_by": {"one": moves[0], "two": moves[1]}})
    print(f"{common.list_files(FIXTURE, 60)} B; {pairs} pairs; the LoRAs move the latents by "
          f"{moves[0]:.3f} (one), {moves[1]:.3f} (two) of {plain.abs().max():.3f}")


if __name__ == "__main__":
    sys.exit(main())
