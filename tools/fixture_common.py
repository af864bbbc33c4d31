"""What every fixture generator in tools/ shares: deterministic single-threaded
PyTorch, weights rounded to the dtype they are stored in, the fixture.json
writer and the listing of what was written. Imported by the make_*.py scripts
(run from anywhere; they put tools/ on sys.path)."""
import json
import os

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


def setup_determinism():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def round_parameters_(model: torch.nn.Module, dtype):
    """Round every parameter to a value `dtype` holds exactly, so the weights can be
    stored in that dtype (half the bytes) while the reference still runs in float32."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype).to(torch.float32))


def write_info(directory, info):
    """directory/fixture.json: `info` as indented JSON (UTF-8 as is) and a final newline."""
    with open(os.path.join(directory, "fixture.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2, ensure_ascii=False)
        f.write("\n")


def list_files(directory, width):
    """Prints every file below `directory` with its size (paths from the repository
    root, padded to `width`); returns the total."""
    total = 0
    for dp, _, fns in sorted(os.walk(directory)):
        for fn in sorted(fns):
            fp = os.path.join(dp, fn)
            size = os.path.getsize(fp)
            total += size
            print(f"  {os.path.relpath(fp, ROOT):{width}s} {size:10d} B")
    return total


TEXT_SIDE = ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "text_encoder_3", "tokenizer_3",
             "text_encoder_4", "tokenizer_4")


def tiny_hidream_pipeline(scheduler, size, **text_side):
    """diffusers' HiDreamImagePipeline with models/tiny-random's transformer and VAE in float32, the given
    scheduler and text side (absent encoders and tokenizers: None). __call__ rescales every request to
    default_sample_size**2 latent pixels, so that is set to this square picture's size."""
    from diffusers import AutoencoderKL, HiDreamImagePipeline, HiDreamImageTransformer2DModel
    model = os.path.join(ROOT, "models", "tiny-random")
    pipe = HiDreamImagePipeline(
        scheduler=scheduler,
        vae=AutoencoderKL.from_pretrained(os.path.join(model, "vae"), torch_dtype=torch.float32).eval(),
        transformer=HiDreamImageTransformer2DModel.from_pretrained(os.path.join(model, "transformer"),
                                                                   torch_dtype=torch.float32).eval(),
        **{**{name: None for name in TEXT_SIDE}, **text_side})
    pipe.set_progress_bar_config(disable=True)
    pipe.default_sample_size = size // pipe.vae_scale_factor
    return pipe
