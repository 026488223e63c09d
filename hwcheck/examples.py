"""The bundled example: a DVS-Gesture-size sinabs CNN and a synthetic event stream.

``hwcheck demo`` checks this model against Speck 2f and a CPU. It is sized to fit Speck's
9-core memory table (2x128x128 input, 11 classes).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["dvs_gesture_cnn", "synthetic_events", "INPUT_SHAPE", "TIMESTEPS"]

INPUT_SHAPE = (2, 128, 128)
TIMESTEPS = 100


def dvs_gesture_cnn(batch_size: int = 1, seed: int = 0) -> nn.Sequential:
    """A 6-layer spiking CNN for 2x128x128 DVS input (sinabs IAFSqueeze neurons).

    Weights are random (seeded) and scaled so that activity is sparse but alive; the model is
    an example for checking, not a trained classifier.
    """
    import sinabs.layers as sl

    g = torch.Generator().manual_seed(seed)

    def iaf() -> nn.Module:
        return sl.IAFSqueeze(batch_size=batch_size, min_v_mem=-1.0)

    model = nn.Sequential(
        nn.Conv2d(2, 8, kernel_size=2, stride=2, bias=False),  # 8x64x64
        iaf(),
        sl.SumPool2d(2),  # 8x32x32
        nn.Conv2d(8, 16, kernel_size=3, padding=1, bias=False),  # 16x32x32
        iaf(),
        sl.SumPool2d(2),  # 16x16x16
        nn.Conv2d(16, 32, kernel_size=3, padding=1, bias=False),  # 32x16x16
        iaf(),
        sl.SumPool2d(2),  # 32x8x8
        nn.Conv2d(32, 64, kernel_size=3, padding=1, bias=False),  # 64x8x8
        iaf(),
        sl.SumPool2d(2),  # 64x4x4
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 32, bias=False),
        iaf(),
        nn.Linear(32, 11, bias=False),
        iaf(),
    )
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (0.6 / fan_in**0.5))
    return model.eval()


def synthetic_events(
    timesteps: int = TIMESTEPS,
    batch_size: int = 1,
    rate_hz: float = 200.0,
    dt: float = 1e-3,
    shape: tuple[int, ...] = INPUT_SHAPE,
    seed: int = 0,
) -> torch.Tensor:
    """Poisson events: each pixel and polarity fires with probability ``rate_hz * dt`` per step.

    Returns ``(batch_size * timesteps, *shape)``, the layout of sinabs ``*Squeeze`` models.
    """
    p = min(max(rate_hz * dt, 0.0), 1.0)
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((batch_size * timesteps, *shape), generator=g) < p).float()
