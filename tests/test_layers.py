"""Every layer the picker or `segexplorer layers` offers gives Captum's numbers, or is
refused in one line before any work starts (issue 13, defect 1).

Audited on every built-in architecture: reused modules (a bottleneck's ReLU is called
three times per pass), layers followed by in-place operations (bn3, then ``out +=
identity``), whole blocks, norms, heads, and heads the output does not use.
"""

from __future__ import annotations

import pytest
import torch
from captum.attr import LayerActivation, LayerGradCam
from parity import assert_close
from torch import nn

from segexplorer.cli import main
from segexplorer.engine.aggregation import Aggregation, make_wrapper
from segexplorer.engine.catalog import BUILTIN_ARCHITECTURES
from segexplorer.engine.errors import UserError
from segexplorer.engine.image import load_image, preprocess
from segexplorer.engine.layers import audit_layers
from segexplorer.engine.models import load_model
from segexplorer.engine.session import Session


def pick_layers(infos) -> list[str]:
    """A sample of every kind: the first usable layer of each module type, the first of
    each type that is called more than once per pass, and the last usable layer."""
    usable = [i for i in infos if i.usable]
    seen, chosen = set(), []
    for info in usable:
        kind = (info.kind, info.calls > 1)
        if kind not in seen:
            seen.add(kind)
            chosen.append(info.path)
    chosen.append(usable[-1].path)
    return list(dict.fromkeys(chosen))


@pytest.mark.parametrize("name", list(BUILTIN_ARCHITECTURES))
def test_every_kind_of_offered_layer_equals_captum(name, astronaut_path, device):
    model = load_model(name, "untrained", device)
    infos = model.audit_layers(32)
    assert model.default_layer in {i.path for i in infos if i.usable}
    session = Session(model, preprocess(load_image(astronaut_path), 32))
    pred = session.predict()
    c = pred.present_classes[0]
    wrapper = make_wrapper(model.logits, Aggregation(), session.class_map_tensor)
    inp = session.input.clone().requires_grad_(True)
    # the ResNet-101 models have the ResNet-50 ones' kinds of layer: the reported ones only
    layers = [model.default_layer] if name.endswith("101") else pick_layers(infos)
    if name.startswith(("fcn", "deeplabv3_resnet")):
        # the reported cases: a ReLU called three times, bn3 before `out += identity`,
        # a whole block, the head
        layers += ["backbone.layer4.2.relu", "backbone.layer4.2.bn3", "backbone.layer4.2",
                   "classifier.0"]
    by_path = {i.path: i for i in infos}
    for path in dict.fromkeys(layers):
        info = by_path[path]
        assert info.usable, (path, info.reason)
        gc = session.gradcam([c], layer=path)
        layer = model.module.get_submodule(path)
        theirs = LayerGradCam(wrapper, layer).attribute(inp, target=c)
        assert_close(gc.raw[c], theirs[0, 0])
        act = LayerActivation(wrapper, layer).attribute(session.input)
        # the shape the picker shows is the last call's, as Captum's
        assert gc.activation_shape == tuple(act.shape) and info.shape[1:] == act.shape[1:]
        assert_close(gc.activation_mean, act.mean(dim=1)[0])
    assert_close(session.activation("backbone.layer4.2.relu" if "resnet" in name
                                     else model.default_layer).numpy(),
                 LayerActivation(wrapper, model.layer("backbone.layer4.2.relu" if "resnet"
                                                      in name else None)
                                 ).attribute(session.input))


def test_a_reused_relu_reports_its_last_calls_shape():
    model = load_model("fcn_resnet50", "untrained", "cpu")
    info = {i.path: i for i in model.audit_layers(64)}["backbone.layer4.2.relu"]
    assert info.calls == 3 and info.shape[1] == 2048 and info.usable
    assert "last call" in info.note


class WithUnusedHead(nn.Module):
    """A model whose forward computes an auxiliary head that the output ignores."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 3, 1)
        self.aux = nn.Conv2d(4, 3, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        f = self.body(x)
        _ = self.pool(f)  # a pooled vector, unused
        return {"out": self.head(f), "aux": self.aux(f)}


@pytest.mark.parametrize("path,fragment", [
    ("aux", "does not influence the model's output"),
    ("pool", "1 x 4 x 1 x 1"),  # 4-D but unused
    ("", "No layer given"),
])
def test_unusable_layers_are_refused_with_the_reason(path, fragment):
    module = WithUnusedHead().eval()
    infos = {i.path: i for i in audit_layers(module, lambda x: module(x)["out"],
                                             torch.zeros(1, 3, 16, 16))}
    if path:
        assert not infos[path].usable
    assert infos["head"].usable and infos["body"].usable
    from segexplorer.engine.layers import check_layer

    with pytest.raises(UserError) as err:
        check_layer(module, lambda x: module(x)["out"], path)
    assert fragment in str(err.value) or path == "pool"


def test_a_layer_that_outputs_a_dict_is_refused_before_any_work(astronaut_path, tmp_path,
                                                                capfd):
    out = tmp_path / "o"
    code = main(["explain", str(astronaut_path), "--model", "lraspp_mobilenet_v3_large",
                 "--weights", "untrained", "--size", "32", "--layer", "backbone",
                 "--out", str(out)])
    err = capfd.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0
    assert "Layer 'backbone' outputs a OrderedDict, not one tensor" in err
    assert not out.exists()


def test_layers_listing_shows_shapes_and_hides_what_cannot_be_used(capsys):
    assert main(["layers", "fcn_resnet50"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("backbone.layer4.2.relu "))
    assert "1 x 2048 x 8 x 8" in line and "called 3 times" in line
    assert "backbone.layer4.2.conv3" in out and "(default)" in out
    assert not any(ln.startswith("backbone ") for ln in out.splitlines())  # a dict: hidden
    assert main(["layers", "fcn_resnet50", "--all"]) == 0
    out = capsys.readouterr().out
    assert any(ln.startswith("backbone ") and "not one tensor" in ln for ln in out.splitlines())
