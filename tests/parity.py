"""How tests compare the engine's numbers with Captum's own calls (1e-5 relative)."""

from __future__ import annotations

import numpy as np
import torch

RTOL = 1e-5


def assert_close(ours: np.ndarray, theirs: torch.Tensor | np.ndarray, rtol: float = RTOL) -> None:
    """Equal shapes, and equal values to ``rtol`` of the reference's largest magnitude."""
    theirs = theirs.detach().cpu().numpy() if isinstance(theirs, torch.Tensor) else theirs
    assert ours.shape == theirs.shape
    scale = max(float(np.abs(theirs).max()), 1e-12)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * scale)
