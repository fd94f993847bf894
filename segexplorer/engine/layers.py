"""A model's layers: naming them, finding them, and which of them Grad-CAM can use.

Any module tree works (torchvision, smp, Hugging Face, a user's own code). What a layer
can be used for is found by running the model, not by its type:

* a module may be called several times in one forward pass (torchvision's ResNet
  bottlenecks call one ReLU three times). Captum's layer methods use its *last* call,
  so the shapes we report and the maps we compute are the last call's too;
* its output must be one N x C x H x W tensor (Grad-CAM averages gradients over H x W
  and the map is drawn over the image); tuples, dicts, token sequences and pooled
  vectors are refused with the reason;
* it must influence the output: an auxiliary head that the forward pass computes but
  never uses has no gradient, so Grad-CAM of it would be undefined.

:func:`audit_layers` finds all three with one forward and one backward pass at a small
input size; the window's layer picker and ``segexplorer layers`` show its answer, and
:meth:`Session.gradcam` raises the same one-line reasons if asked for such a layer.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .errors import UserError

_INDEX = re.compile(r"\[(\d+)\]")


def normalize_layer_path(path: str) -> str:
    """'backbone.layer4[2].conv3' and 'backbone.layer4.2.conv3' name the same layer."""
    return _INDEX.sub(r".\1", path.strip()).strip(".")


def get_layer(module: nn.Module, path: str) -> nn.Module:
    dotted = normalize_layer_path(path)
    if not dotted:
        raise UserError(f"No layer given: {_example(module, '')} (segexplorer layers MODEL "
                        "lists them).")
    try:
        return module.get_submodule(dotted)
    except AttributeError:
        raise UserError(f"Layer '{path}' does not exist in this model: "
                        f"{_example(module, dotted)} (segexplorer layers MODEL lists them)."
                        ) from None


def _example(module: nn.Module, wanted: str) -> str:
    """A layer of *this* model to suggest: the closest name to ``wanted`` among its leaf
    layers (a container's output is rarely a tensor), else its last convolution (never
    another architecture's path)."""
    names = [name for name, sub in module.named_modules()
             if name and next(sub.children(), None) is None]
    close = difflib.get_close_matches(wanted, names, n=1, cutoff=0.6) if wanted else []
    if close:
        return f"did you mean '{close[0]}'?"
    convs = [name for name, sub in module.named_modules()
             if name and isinstance(sub, nn.Conv2d)]
    example = (convs or names or ["<none>"])[-1]
    return f"give a dotted path such as '{example}'"


def list_layers(module: nn.Module) -> list[tuple[str, str]]:
    """(dotted path, module type) for every named submodule, in definition order."""
    return [(name, type(sub).__name__) for name, sub in module.named_modules() if name]


def unusable_output_reason(path: str, output: object) -> str | None:
    """Why a layer's (last) output cannot be explained with Grad-CAM, or None if it can."""
    if not isinstance(output, torch.Tensor):
        kind = type(output).__name__
        return (f"Layer '{path}' outputs a {kind}, not one tensor: choose a convolution, "
                "norm or activation layer")
    if output.dim() != 4:
        shape = " x ".join(str(int(d)) for d in output.shape)
        what = {2: "a vector per image", 3: "a sequence (tokens)"}.get(output.dim(),
                                                                     f"{output.dim()}-D data")
        return (f"Layer '{path}' outputs {shape} ({what}): Grad-CAM needs an N x C x H x W "
                "output; choose a convolution, norm or activation layer")
    return None


UNUSED_REASON = ("Layer '{path}' does not influence the model's output (an unused or "
                 "auxiliary head): choose a layer on the path to the output")
NOT_CALLED_REASON = ("Layer '{path}' is not used by the model's forward pass: choose "
                     "another layer")


@dataclass(frozen=True)
class LayerInfo:
    """What one layer is and whether Grad-CAM and the activation view can use it."""

    path: str
    kind: str  # the module's class name
    calls: int  # how many times one forward pass calls it
    shape: tuple[int, ...] | None  # its last call's output shape (None: not one tensor)
    reason: str = ""  # why it cannot be used ('' when it can)

    @property
    def usable(self) -> bool:
        return not self.reason

    @property
    def note(self) -> str:
        """A short remark for the picker: reuse, or why not (without the layer's name)."""
        if self.reason:
            return self.reason.removeprefix(f"Layer '{self.path}' ")
        if self.calls > 1:
            return f"called {self.calls} times per pass: its last call is used (as Captum does)"
        return ""


def audit_layers(module: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor],
                 batch: torch.Tensor, only: str | None = None) -> list[LayerInfo]:
    """Every named layer of ``module`` (or just the one at path ``only``) with its last
    output shape and its usability.

    ``forward`` maps an input batch to the logits (it runs ``module``). One forward
    pass with hooks on every layer, and one backward pass from the summed logits to
    every layer's last output, which tells the layers that influence the output.
    """
    calls: dict[str, int] = {}
    outputs: dict[str, object] = {}
    handles = []
    wanted = normalize_layer_path(only) if only is not None else None
    if wanted is not None:
        get_layer(module, wanted)  # one line if it does not exist
    for name, sub in module.named_modules():
        if not name or (wanted is not None and name != wanted):
            continue

        def hook(_module: nn.Module, _inputs: object, output: object, name: str = name) -> None:
            calls[name] = calls.get(name, 0) + 1
            outputs[name] = output  # the last call wins, as in Captum

        handles.append(sub.register_forward_hook(hook))
    try:
        with torch.enable_grad():
            inp = batch.detach().clone().requires_grad_(True)
            logits = forward(inp)
            tensors = {n: o for n, o in outputs.items()
                       if isinstance(o, torch.Tensor) and o.requires_grad}
            names = list(tensors)
            grads = torch.autograd.grad(logits.float().sum(), [tensors[n] for n in names],
                                        allow_unused=True) if names else ()
    finally:
        for handle in handles:
            handle.remove()
    used = {n for n, g in zip(names, grads) if g is not None}
    infos = []
    for name, kind in list_layers(module):
        if wanted is not None and name != wanted:
            continue
        output = outputs.get(name)
        shape = tuple(int(d) for d in output.shape) if isinstance(output, torch.Tensor) \
            else None
        if name not in calls:
            reason = NOT_CALLED_REASON.format(path=name)
        else:
            reason = unusable_output_reason(name, output) or ""
            if not reason and name not in used:
                reason = UNUSED_REASON.format(path=name)
        infos.append(LayerInfo(name, kind, calls.get(name, 0), shape, reason))
    return infos


def check_layer(module: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor],
                path: str, size: int = 32,
                device: torch.device | None = None) -> LayerInfo:
    """Refuse, with its one-line reason, a layer Grad-CAM cannot use: before any real work,
    from one forward and one backward pass on a small grey image."""
    batch = torch.zeros(1, 3, size, size, device=device)
    (info,) = audit_layers(module, forward, batch, only=path)
    if not info.usable:
        raise UserError(info.reason + ".")
    return info


def layer_output_shapes(module: nn.Module, batch: torch.Tensor,
                        forward: Callable[[torch.Tensor], object] | None = None
                        ) -> dict[str, tuple[int, ...]]:
    """``{dotted path: output shape of its last call}`` for every layer that outputs one
    tensor (one forward pass with hooks on every layer, for the window's layer picker)."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for name, sub in module.named_modules():
        if not name:
            continue

        def hook(_module: nn.Module, _inputs: object, output: object, name: str = name) -> None:
            if isinstance(output, torch.Tensor):
                shapes[name] = tuple(int(d) for d in output.shape)
            else:
                shapes.pop(name, None)

        handles.append(sub.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            (forward or module)(batch)
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def guess_default_layer(module: nn.Module, num_outputs: int,
                        forward: Callable[[torch.Tensor], torch.Tensor],
                        batch: torch.Tensor) -> str:
    """A sensible Grad-CAM layer for a model nobody configured: the last convolution
    before the classifier (the decode head's last spatial convolution) that Grad-CAM can
    use, skipping auxiliary heads; failing that, the last usable layer of any kind."""
    infos = audit_layers(module, forward, batch)
    usable = [i for i in infos if i.usable and "aux" not in i.path.lower()]
    if not usable:
        raise UserError("No layer of this model outputs an N x C x H x W tensor that "
                        "influences the output: Grad-CAM cannot be used with it.")
    convs = [i for i in usable if isinstance(module.get_submodule(i.path), nn.Conv2d)
             and i.shape is not None and i.shape[1] != num_outputs]
    return (convs or usable)[-1].path
