"""The user's own models through model cards equal Captum's own calls on the same model.

For each source (torchvision with 5 classes, smp Unet at an odd size, a Hugging Face
SegFormer, a binary python model, a 4-class python model returning a tuple), ``explain``
gives Layer Grad-CAM, the layer's activation and feature ablation by segment that equal
Captum's LayerGradCam / LayerActivation / FeatureAblation on the same wrapped model
(1e-5 relative, as tests/test_engine_parity.py), and the card's names, colours and
preprocessing reach the prediction and the report.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from captum.attr import FeatureAblation, LayerActivation, LayerAttribution, LayerGradCam
from card_models import SEGFORMER_LABELS, SMP_CLASSES, TV5_CLASSES, TV5_PALETTE
from parity import assert_close

from segexplorer.cli import main
from segexplorer.engine.aggregation import Aggregation, make_wrapper
from segexplorer.engine.analysis import ExplainRequest, explain
from segexplorer.engine.image import load_image
from segexplorer.engine.models import load_model

SOURCES = ["tv5", "smp", "segformer", "binary", "python"]
SIZES = {"tv5": 40, "smp": None, "segformer": None, "binary": 37, "python": 33}



@pytest.fixture(scope="module")
def loaded(card_models, device):
    """The cards' models on --device (the CPU unless a GPU run asks for cuda)."""
    return {name: load_model(getattr(card_models, name), None, device) for name in SOURCES}


@pytest.mark.parametrize("source", SOURCES)
def test_explain_equals_captum_for_each_source(source, loaded, astronaut_path):
    model = loaded[source]
    request = ExplainRequest(image=str(astronaut_path), model=str(model.card.path),
                             size=SIZES[source], segments="component")
    result = explain(request, model=model)
    pred = result.prediction
    h, w = pred.shape
    # the wrapped model Captum sees: the same logits function, the seed's wrapper
    from segexplorer.engine.image import preprocess

    prepared = preprocess(load_image(astronaut_path), result.size, model.normalization)
    x = prepared.tensor.to(model.device)
    inp = x.clone().requires_grad_(True)
    with torch.no_grad():
        logits = model.logits(x)
    assert tuple(logits.shape) == (1, model.num_classes, h, w)  # at input size, any source
    out_max = torch.argmax(logits, dim=1, keepdim=True)
    np.testing.assert_array_equal(pred.class_map, out_max[0, 0].cpu().numpy())
    wrapper = make_wrapper(model.logits, Aggregation(), out_max)
    layer = model.layer()
    lgc = LayerGradCam(wrapper, layer)
    assert result.targets == tuple(pred.present_classes)
    for c in result.targets:
        theirs = lgc.attribute(inp, target=c)
        assert_close(result.gradcam.raw[c], theirs[0, 0])
        up = LayerAttribution.interpolate(theirs, (h, w))
        assert_close(result.gradcam.upsampled[c], up[0, 0])
    act = LayerActivation(wrapper, layer).attribute(x)
    assert result.gradcam.activation_shape == tuple(act.shape)
    assert_close(result.gradcam.activation_mean, act.mean(dim=1)[0])
    mask = torch.as_tensor(result.sweep.segments.ids, device=model.device).view(1, 1, h, w)
    fa = FeatureAblation(wrapper)
    for c in result.targets:
        theirs = fa.attribute(x, feature_mask=mask, target=c)
        assert_close(result.sweep.attribution_map(c), theirs[0, 0])


def test_torchvision_card_with_five_classes(loaded):
    model = loaded["tv5"]
    assert model.categories == TV5_CLASSES
    np.testing.assert_array_equal(model.colors, np.array(TV5_PALETTE, np.uint8))
    assert model.default_layer == "backbone.layer4.2.conv3"  # the built-in's (the seed's)
    assert model.weights.endswith("deeplab5.pth")  # the aux head's keys were accepted


def test_smp_unet_card(loaded):
    model = loaded["smp"]
    assert model.categories == SMP_CLASSES and model.default_size == 45
    assert model.default_layer == "encoder.layer4.1.conv2"
    # smp's Unet takes any size itself (smp >= 0.5): nothing to pad
    assert model.adapter.pad_multiple == 1


@pytest.mark.parametrize("arch,stride", [("UnetPlusPlus", 32), ("FPN", 32),
                                         ("DeepLabV3Plus", 16), ("PSPNet", 8)])
def test_smp_models_that_need_divisible_sizes_are_padded_inside_the_wrapper(
        arch, stride, tmp_path, astronaut_path):
    import segmentation_models_pytorch as smp

    torch.manual_seed(5)
    net = getattr(smp, arch)(encoder_name="resnet18", encoder_weights=None, classes=2)
    torch.save(net.state_dict(), tmp_path / "w.pth")
    card = tmp_path / "card.toml"
    card.write_text(f'[model]\nsource = "smp"\narchitecture = "{arch}"\nencoder = "resnet18"\n'
                    'weights = "w.pth"\n')
    model = load_model(card, None, "cpu")
    assert model.adapter.pad_multiple == stride and model.num_classes == 2
    x = torch.randn(1, 3, 45, 67, generator=torch.Generator().manual_seed(0))
    h_pad, w_pad = -(-45 // stride) * stride, -(-67 // stride) * stride
    with torch.no_grad():
        ours = model.logits(x)
        direct = model.module(torch.nn.functional.pad(x, (0, w_pad - 67, 0, h_pad - 45)))
    assert torch.equal(ours, direct[..., :45, :67])
    if arch == "FPN":  # and Captum sees the same padded function
        from segexplorer.engine.image import preprocess
        from segexplorer.engine.session import Session

        session = Session(model, preprocess(load_image(astronaut_path), 45))
        c = session.predict().present_classes[0]
        ours_gc = session.gradcam([c])
        wrapper = make_wrapper(model.logits, Aggregation(), session.class_map_tensor)
        inp = session.input.clone().requires_grad_(True)
        theirs = LayerGradCam(wrapper, model.layer()).attribute(inp, target=c)
        assert_close(ours_gc.raw[c], theirs[0, 0])


def test_huggingface_folder_gives_names_normalisation_and_size(loaded):
    model = loaded["segformer"]
    assert model.categories == tuple(SEGFORMER_LABELS[i] for i in range(4))
    assert model.normalization.mean == (0.5, 0.5, 0.5) and model.default_size == 48
    assert model.default_layer == "decode_head.linear_fuse"  # the decode head's last conv
    x = torch.randn(1, 3, 48, 61, generator=torch.Generator().manual_seed(0)).to(model.device)
    with torch.no_grad():
        low = model.module(pixel_values=x).logits
        expected = torch.nn.functional.interpolate(low, size=(48, 61), mode="bilinear",
                                                   align_corners=False)
        assert torch.equal(model.logits(x), expected)


def test_binary_model_is_two_classes_by_the_sign_of_its_logit(loaded, astronaut_path):
    model = loaded["binary"]
    assert model.binary and model.categories == ("background", "crack")
    from segexplorer.engine.image import preprocess
    from segexplorer.engine.session import Session

    session = Session(model, preprocess(load_image(astronaut_path), 37, model.normalization))
    pred = session.predict()
    with torch.no_grad():
        z = model.adapter.module(session.input)
        z = torch.nn.functional.interpolate(z, size=pred.shape, mode="bilinear",
                                            align_corners=False)[0, 0].cpu().numpy()
    np.testing.assert_array_equal(pred.class_map, (z > 0).astype(np.int64))
    np.testing.assert_allclose(pred.logits[1], z, rtol=1e-6)
    np.testing.assert_allclose(pred.logits[0], -z, rtol=1e-6)
    ((cls, score, prob),) = pred.describe_pixel(3, 4)  # one class per pixel
    assert prob == pytest.approx(1 / (1 + np.exp(-score)))  # the model's own sigmoid


def test_report_names_the_card_and_npz_keys_are_the_usual(card_models, astronaut_path,
                                                          tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["explain", str(astronaut_path), "--model", str(card_models.smp), "--device",
                 "cpu", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["model_card"]["card"] == str(card_models.smp)
    assert report["model_card"]["source"] == "smp"
    assert report["class_names"] == list(SMP_CLASSES)
    npz = np.load(out / "attributions.npz")
    keys = set(npz.files)
    assert {"segmentation", "segment_ids", "ablation_table"} <= keys
    assert all(k.split("_")[0] in ("segmentation", "segment", "ablation", "gradcam")
               for k in keys)


def test_binary_card_says_so_on_the_command_line(card_models, astronaut_path, tmp_path, capsys):
    code = main(["explain", str(astronaut_path), "--model", str(card_models.binary), "--device",
                 "cpu", "--size", "32", "--out", str(tmp_path / "o")])
    assert code == 0
    err = capsys.readouterr().err
    assert "ran your code" in err and "binary model" in err
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert "binary" in report["model_card"]
    assert report["class_names"] == ["background", "crack"]


def test_models_command_prints_the_resolved_card(card_models, capsys):
    assert main(["models", str(card_models.segformer)]) == 0
    out = capsys.readouterr().out
    for fragment in ("source:", "huggingface", "sky, road, car, tree", "48 px",
                     "mean (0.5, 0.5, 0.5)", "decode_head.linear_fuse", "parameters:",
                     "from the model's config"):
        assert fragment in out, fragment
    assert main(["models", str(card_models.python)]) == 0
    out = capsys.readouterr().out
    assert "runs Python code" in out and "palette:" in out and "not given" in out


def test_layers_command_takes_a_card(card_models, capsys):
    assert main(["layers", str(card_models.segformer)]) == 0
    out = capsys.readouterr().out
    assert "decode_head.linear_fuse" in out and "(default)" in out
    assert "segformer.stages.0.blocks.0.attention.q_proj" not in out  # tokens: hidden
    assert main(["layers", str(card_models.segformer), "--all"]) == 0
    out = capsys.readouterr().out
    assert "q_proj" in out and "sequence (tokens)" in out


# ------------------------------------------------------------------------- bad cards
BAD_CARDS = {
    # name: (card text, what the one line must say)
    "not-toml": ("[model\nsource = 1", "not valid TOML"),
    "no-model-section": ("[explain]\nlayer = 'x'\n", "no [model] section"),
    "missing-source": ("[model]\narchitecture = 'Unet'\n", "[model] source is missing"),
    "unknown-source": ("[model]\nsource = 'keras'\n", "source 'keras' is unknown"),
    "unknown-key": ("[model]\nsource = 'smp'\nclases = ['a']\n", "unknown key [model] clases"),
    "missing-architecture": ("[model]\nsource = 'torchvision'\nweights = 'deeplab5.pth'\n",
                             "[model] architecture is missing"),
    "missing-weights-file": ("[model]\nsource = 'torchvision'\narchitecture = "
                             "'deeplabv3_resnet50'\nweights = 'gone.pth'\n", "gone.pth"),
    "unknown-builder": ("[model]\nsource = 'torchvision'\narchitecture = 'unet'\n"
                        "weights = 'deeplab5.pth'\n", "not a torchvision segmentation builder"),
    "wrong-class-count": ("[model]\nsource = 'torchvision'\narchitecture = "
                          "'deeplabv3_resnet50'\nweights = 'deeplab5.pth'\n"
                          "classes = ['a', 'b', 'c']\n", "[model] classes has 3 classes but the weights"),
    "labels-wrong-lines": ("[model]\nsource = 'torchvision'\narchitecture = "
                           "'deeplabv3_resnet50'\nweights = 'deeplab5.pth'\n"
                           "labels = 'labels7.txt'\n", "the labels file 'labels7.txt' has 7 classes but the weights"),
    "labels-missing": ("[model]\nsource = 'smp'\narchitecture = 'Unet'\n"
                       "weights = 'smp/unet.safetensors'\nlabels = 'nope.txt'\n",
                       "labels file"),
    "wrong-architecture": ("[model]\nsource = 'smp'\narchitecture = 'FPN'\nencoder = 'resnet18'"
                           "\nweights = 'smp/unet.safetensors'\n", "is not a smp FPN"),
    "palette-count": ("[model]\nsource = 'python'\nfactory = 'user_models.py:build_four'\n"
                      "classes = ['a', 'b', 'c', 'd']\npalette = [[0, 0, 0]]\n",
                      "palette has 1 colours for 4 classes"),
    "factory-raises": ("[model]\nsource = 'python'\nfactory = 'user_models.py:build_broken'\n",
                       "raised ValueError: the checkpoint folder is not mounted"),
    "factory-not-a-module": ("[model]\nsource = 'python'\n"
                             "factory = 'user_models.py:build_not_a_module'\n",
                             "returned a dict, not a torch.nn.Module"),
    "factory-missing-function": ("[model]\nsource = 'python'\n"
                                 "factory = 'user_models.py:nope'\n", "has no function 'nope'"),
    "factory-without-python": ("[model]\nsource = 'smp'\narchitecture = 'Unet'\n"
                               "weights = 'smp/unet.safetensors'\n"
                               "factory = 'user_models.py:build_four'\n",
                               "factory applies to source = \"python\" only"),
    "hf-not-a-model-folder": ("[model]\nsource = 'huggingface'\nweights = 'smp'\n",
                              "has no config.json"),
    "missing-layer": ("[model]\nsource = 'python'\nfactory = 'user_models.py:build_four'\n"
                      "[explain]\nlayer = 'features.9'\n", "Layer 'features.9' does not exist"),
    "bad-size": ("[model]\nsource = 'python'\nfactory = 'user_models.py:build_four'\n"
                 "[preprocess]\nsize = 4\n", "[preprocess] size"),
    # issue 26, item 11: a labels file one line short is the labels file's mistake, not
    # the palette's (before: "palette has 3 colours for 2 classes")
    "labels-short-with-palette": ("[model]\nsource = 'smp'\narchitecture = 'Unet'\n"
                                  "encoder = 'resnet18'\nweights = 'smp/unet.safetensors'\n"
                                  "labels = 'labels2.txt'\n"
                                  "palette = [[0, 0, 0], [9, 9, 9], [99, 99, 99]]\n",
                                  "the labels file 'labels2.txt' has 2 classes but the weights"),
    "python-labels-short-with-palette": ("[model]\nsource = 'python'\n"
                                         "factory = 'user_models.py:build_four'\n"
                                         "labels = 'labels3.txt'\npalette = [[0, 0, 0], "
                                         "[1, 1, 1], [2, 2, 2], [3, 3, 3]]\n",
                                         "the labels file 'labels3.txt' has 3 classes but the "
                                         "model outputs 4 channels"),
}


@pytest.mark.parametrize("kind", list(BAD_CARDS))
def test_a_bad_card_is_one_line_exit_1_and_writes_nothing(kind, card_models, astronaut_path,
                                                          tmp_path, capfd):
    text, fragment = BAD_CARDS[kind]
    for n in (7, 2, 3):
        (card_models.root / f"labels{n}.txt").write_text("\n".join(f"c{i}" for i in range(n))
                                                        + "\n")
    card = card_models.root / f"bad-{kind}.toml"
    card.write_text(text.replace("'", '"'), encoding="utf-8")
    out = tmp_path / "out"
    code = main(["explain", str(astronaut_path), "--model", str(card), "--device", "cpu",
                 "--out", str(out)])
    captured = capfd.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 1, captured.err
    assert len(lines) == 1 and lines[0].startswith("segexplorer: error: "), captured.err
    assert fragment in lines[0], lines[0]
    assert card.name in lines[0], lines[0]
    assert not out.exists()  # nothing written, not even the folder


def test_a_bad_layer_in_an_smp_card_suggests_one_of_its_own_layers(card_models, tmp_path,
                                                                    capfd, astronaut_path):
    """Issue 26, item 11: the suggestion was torchvision's 'backbone.layer4.2.conv3'."""
    card = card_models.root / "bad-smp-layer.toml"
    card.write_text(card_models.smp.read_text().replace(
        'labels = "labels.txt"', 'labels = "smp/labels.txt"').replace(
        'weights = "unet.safetensors"', 'weights = "smp/unet.safetensors"').replace(
        "encoder.layer4.1.conv2", "encoder.layer4.1.conv9"), encoding="utf-8")
    code = main(["explain", str(astronaut_path), "--model", str(card), "--device", "cpu",
                 "--out", str(tmp_path / "o")])
    err = capfd.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0, err
    assert "backbone" not in err
    suggested = re.search(r"did you mean '([^']+)'", err).group(1)
    model = load_model(card_models.smp, None, "cpu")
    assert suggested in dict(model.module.named_modules())
    assert suggested.startswith("encoder.layer4.1.conv")
    # with no name close to it: this model's last convolution
    from segexplorer.engine.errors import UserError
    from segexplorer.engine.layers import get_layer

    with pytest.raises(UserError, match="such as 'segmentation_head.0'"):
        get_layer(model.module, "zzz")


def test_a_missing_card_is_one_line(tmp_path, capfd, astronaut_path):
    code = main(["explain", str(astronaut_path), "--model", str(tmp_path / "nope.toml"),
                 "--out", str(tmp_path / "o")])
    err = capfd.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0 and "nope.toml' does not exist" in err


def test_reading_a_card_runs_no_code(card_models, tmp_path):
    """Only building a python card runs the factory; reading it (the window lists recent
    cards, `models` prints them) never does."""
    from segexplorer.engine.cards import read_card

    marker = tmp_path / "ran"
    (tmp_path / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n"
                                      "def build():\n    raise SystemExit\n")
    card = tmp_path / "evil.toml"
    card.write_text('[model]\nsource = "python"\nfactory = "evil.py:build"\n')
    parsed = read_card(card)
    assert parsed.runs_code and not marker.exists()


def test_a_torchscript_module_is_refused_with_the_way_out(tmp_path, capfd, astronaut_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1))
    scripted = torch.jit.trace(net, torch.zeros(1, 3, 8, 8))
    scripted.save(str(tmp_path / "net_ts.pt"))
    (tmp_path / "ts.py").write_text(
        f"import torch\ndef build():\n    return torch.jit.load({str(tmp_path / 'net_ts.pt')!r})\n")
    (tmp_path / "ts.toml").write_text('[model]\nsource = "python"\nfactory = "ts.py:build"\n')
    code = main(["explain", str(astronaut_path), "--model", str(tmp_path / "ts.toml"),
                 "--out", str(tmp_path / "o")])
    err = capfd.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0
    assert "TorchScript module" in err and "the torch.nn.Module it was scripted from" in err


def test_more_than_21_classes_get_distinct_colours_and_keep_vocs_first(tmp_path):
    from segexplorer.engine.models import ARCHITECTURES
    from segexplorer.render.palette import VOC_PALETTE

    torch.manual_seed(3)
    torch.save(ARCHITECTURES["tiny"].build(30).state_dict(), tmp_path / "thirty.pth")
    model = load_model("tiny", str(tmp_path / "thirty.pth"), "cpu")
    colors = model.colors
    assert colors.shape == (30, 3) and model.categories[29] == "class 29"
    np.testing.assert_array_equal(colors[:21], VOC_PALETTE)  # the seed's look
    assert len({tuple(c) for c in colors}) == 30  # every class its own colour


@pytest.mark.parametrize("frozen", [False, True])
def test_a_missing_optional_library_says_how_to_get_it(card_models, monkeypatch, frozen):
    import builtins
    import sys

    real_import = builtins.__import__

    def no_smp(name, *args, **kwargs):
        if name.startswith("segmentation_models_pytorch"):
            raise ImportError("No module named 'segmentation_models_pytorch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_smp)
    monkeypatch.setattr(sys, "frozen", frozen, raising=False)
    from segexplorer.engine.errors import UserError

    with pytest.raises(UserError) as err:
        load_model(card_models.smp, None, "cpu")
    message = str(err.value)
    assert "segmentation-models-pytorch" in message
    assert ("bundle does not include it" in message) == frozen
    assert "segexplorer[models]" in message
