"""Output shape of every layer for one input (for the layer picker).

This belongs in the engine (``segexplorer.engine.models``); it lives here until the
engine offers an equivalent, and it is only ever called inside a worker job.
"""

from __future__ import annotations


def layer_output_shapes(module, batch) -> dict[str, tuple[int, ...]]:
    """``{dotted path: output shape}`` for every submodule that outputs one tensor."""
    import torch

    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for name, sub in module.named_modules():
        if not name:
            continue

        def hook(_module, _inputs, output, name=name):
            if isinstance(output, torch.Tensor) and name not in shapes:
                shapes[name] = tuple(int(d) for d in output.shape)

        handles.append(sub.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            module(batch)
    finally:
        for handle in handles:
            handle.remove()
    return shapes
