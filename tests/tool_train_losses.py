"""The demo training's picture-space loss terms (tools/train/train.py) against NumPy references:
edge_loss (--edge-weight: L1 of the horizontal and vertical finite differences),
reconstruction_loss (L1 + MSE, plus the edge term), and edge_token_weights
(--edge-token-weight: 1 + W x a token's share of the picture's edges, mean 1 a picture).
Skips (77) where PyTorch or diffusers is not installed."""
import os
import sys
import types

import numpy as np

try:
    import torch
    import diffusers  # noqa: F401  (train.py's models need it)
except ImportError as e:
    print(f"SKIP: {e}")
    sys.exit(77)

sys.path.insert(0, os.path.abspath(sys.argv[1]))
import train  # noqa: E402

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)


def edge_map(x):
    """[N, C, H, W] -> [N, H, W]: |right - here| + |below - here| summed over channels, 0 on the
    last row and column (NumPy, loops over nothing but the definition)."""
    n, c, h, w = x.shape
    g = np.zeros((n, h, w))
    g[:, :h - 1, :w - 1] = (np.abs(x[:, :, :h - 1, 1:] - x[:, :, :h - 1, :w - 1]) +
                            np.abs(x[:, :, 1:, :w - 1] - x[:, :, :h - 1, :w - 1])).sum(1)
    return g


def token_weights(x, px, weight):
    g = edge_map(x)
    n, h, w = g.shape
    pooled = g.reshape(n, h // px, px, w // px, px).mean((2, 4)).reshape(n, -1)
    out = 1 + weight * pooled / pooled.mean(1, keepdims=True)
    return out / out.mean(1, keepdims=True)


rng = np.random.default_rng(35)
y, x = rng.normal(size=(2, 3, 32, 48)), rng.normal(size=(2, 3, 32, 48))
ty, tx = torch.from_numpy(y), torch.from_numpy(x)
ref = (np.abs(np.diff(y, axis=3) - np.diff(x, axis=3)).mean() + np.abs(np.diff(y, axis=2) - np.diff(x, axis=2)).mean())
check(abs(train.edge_loss(ty, tx).item() - ref) < 1e-9, f"edge_loss {train.edge_loss(ty, tx).item()} vs {ref}")
check(train.edge_loss(tx + 0.7, tx).item() < 1e-12, "edge_loss of a constant shift is not 0")
plain = np.abs(y - x).mean() + ((y - x) ** 2).mean()
for weight in (0.0, 0.5):
    got = train.reconstruction_loss(ty, tx, types.SimpleNamespace(edge_weight=weight)).item()
    check(abs(got - (plain + weight * ref)) < 1e-9, f"reconstruction_loss at edge weight {weight}: {got}")

pictures = rng.uniform(-1, 1, size=(3, 3, 64, 96))
for weight in (0.5, 1.0, 4.0):
    got = train.edge_token_weights(torch.from_numpy(pictures), 16, weight).numpy()
    want = token_weights(pictures, 16, weight)
    check(got.shape == (3, 24) and np.abs(got - want).max() < 1e-9, f"edge_token_weights at {weight}")

# A flat picture with one square object: tokens away from the outline weigh 1 / (1 + W), the
# outline's the rest, and the weights keep a mean of 1.
flat = np.zeros((1, 3, 64, 64))
flat[:, :, 20:40, 20:40] = 1.0
w = train.edge_token_weights(torch.from_numpy(flat), 16, 1.0).numpy().reshape(4, 4)
check(abs(w.mean() - 1) < 1e-9, f"mean weight {w.mean()}")
check(abs(w[3, 3] - 0.5) < 1e-9 and abs(w[0, 3] - 0.5) < 1e-9, f"background tokens weigh {w[3, 3]}, {w[0, 3]}")
check(w[1, 1] > 1 and w[2, 2] > 1, f"outline tokens weigh {w[1, 1]}, {w[2, 2]}")

if failures:
    print("FAIL:\n  " + "\n  ".join(failures))
    sys.exit(1)
print("edge_loss, reconstruction_loss and edge_token_weights match their NumPy references")
