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
