"""The engine's numbers equal Captum's own calls on the same model and input.

Untrained (seeded) torchvision models and real photos; every comparison is to 1e-5
relative (in practice the numbers are bit-identical on the CPU: the engine uses the same
operations in the same order). ``pytest --device cuda`` runs them on a GPU, where both
sides run in strict fp32 (no TF32) and batches of different sizes may pick different
cuDNN kernels, so agreement is to float rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import FeatureAblation, LayerActivation, LayerAttribution, LayerGradCam
from parity import assert_close
from PIL import Image
from torchvision import transforms

from segexplorer.engine.aggregation import Aggregation, make_wrapper
from segexplorer.engine.baselines import baseline_tensor, parse_baseline
from segexplorer.engine.image import load_image, preprocess
from segexplorer.engine.models import load_model
from segexplorer.engine.segments import make_segments
from segexplorer.engine.session import Session
from segexplorer.render import hide_target


@pytest.fixture(scope="module")
def fcn101(device):
    return load_model("fcn_resnet101", "untrained", device)


@pytest.fixture(scope="module")
def motorcycle_session(fcn101, motorcycle_path):
    # 97: an odd working size, so the layer resolution does not divide the input evenly
    return Session(fcn101, preprocess(load_image(motorcycle_path), 97))


def seed_input(session: Session) -> torch.Tensor:
    inp = session.input.clone()
    inp.requires_grad = True  # as the seed does
    return inp


def seed_wrapper(session: Session, agg: Aggregation | None = None):
    return make_wrapper(session.model.logits, agg or Aggregation(), session.class_map_tensor)


def test_preprocessing_is_the_seeds(motorcycle_path):
    img = Image.open(motorcycle_path).convert("RGB")
    seed = transforms.Compose([transforms.Resize(97), transforms.ToTensor()])(img)
    normalized = transforms.Normalize(mean=[0.485, 0.456, 0.406],
                                      std=[0.229, 0.224, 0.225])(seed).unsqueeze(0)
    prepared = preprocess(load_image(motorcycle_path), 97)
    assert torch.equal(prepared.tensor, normalized)
    assert prepared.rgb.shape == (97, 143, 3)
    np.testing.assert_array_equal(prepared.rgb, (seed.permute(1, 2, 0).numpy() * 255).round())


def test_segmentation_is_the_seeds_argmax(motorcycle_session):
    pred = motorcycle_session.predict()
    with torch.no_grad():
        out = motorcycle_session.model.module(motorcycle_session.input)["out"]
    np.testing.assert_array_equal(pred.class_map, torch.argmax(out, dim=1)[0].cpu().numpy())
    assert pred.pixel_counts.sum() == pred.class_map.size
    assert len(pred.present_classes) >= 3, "the test image should show several classes"


def test_gradcam_for_every_class_from_one_pass_equals_layer_gradcam(motorcycle_session):
    session = motorcycle_session
    pred = session.predict()
    passes = session.forward_passes
    targets = pred.present_classes + [c for c in range(3) if c not in pred.present_classes]
    ours = session.gradcam(targets, upsample="nearest")
    assert session.forward_passes == passes + 1  # one forward pass for all targets
    ours_bilinear = session.gradcam(targets[:2], upsample="bilinear")
    lgc = LayerGradCam(seed_wrapper(session), session.model.layer())
    inp = seed_input(session)
    for c in targets:
        theirs = lgc.attribute(inp, target=c)
        assert_close(ours.raw[c], theirs[0, 0])
        up = LayerAttribution.interpolate(theirs, inp.shape[2:])
        assert_close(ours.upsampled[c], up[0, 0])
        if c in ours_bilinear.upsampled:
            up_bl = LayerAttribution.interpolate(theirs, inp.shape[2:], "bilinear")
            assert_close(ours_bilinear.upsampled[c], up_bl[0, 0])
    # absent classes have a zero argmax-masked score, so a zero map
    assert not np.any(ours.raw[targets[-1]]) or targets[-1] in pred.present_classes


def test_layer_activation_equals_captum(motorcycle_session):
    session = motorcycle_session
    theirs = LayerActivation(seed_wrapper(session), session.model.layer()).attribute(
        session.input)
    ours = session.activation()
    assert tuple(ours.shape) == tuple(theirs.shape) == (1, 2048, 13, 18)
    assert_close(ours.numpy(), theirs)
    gc = session.gradcam(session.predict().present_classes[:1])
    assert gc.activation_shape == tuple(theirs.shape)
    assert_close(gc.activation_mean, theirs.mean(dim=1)[0])


def test_feature_ablation_for_every_present_class_from_one_sweep(motorcycle_session):
    session = motorcycle_session
    pred = session.predict()
    segments = make_segments(pred.class_map, "class")
    sweep = session.sweep(segments)
    # initial scores reuse the prediction; one segment per pass on the CPU, chunks on CUDA
    chunks = -(-segments.count // sweep.chunk_size)
    assert sweep.forward_passes == (segments.count if session.model.device.type == "cpu"
                                    else chunks)
    fa = FeatureAblation(seed_wrapper(session))
    for c in pred.present_classes:
        theirs = fa.attribute(session.input, feature_mask=session.class_map_tensor, target=c)
        # Captum's channels are all equal; ours is that one channel
        assert torch.equal(theirs[0, 0], theirs[0, 2])
        assert_close(sweep.attribution_map(c), theirs[0, 0])
    # the seed's "without the target segment" view (theirs: the last target's map)
    seed_view = (1 - (session.class_map_tensor == c).float())[0] * theirs
    assert_close(hide_target(sweep.attribution_map(c), pred.class_map, c), seed_view[0, 0])


def test_seed_batching_gives_the_same_table(coffee_session):
    """The seed's perturbations_per_eval=2 agrees with our batch-1 sweep."""
    session = coffee_session
    pred = session.predict()
    sweep = session.sweep(make_segments(pred.class_map, "class"))
    c = pred.present_classes[0]
    theirs = FeatureAblation(seed_wrapper(session)).attribute(
        session.input, feature_mask=session.class_map_tensor, perturbations_per_eval=2,
        target=c)
    assert_close(sweep.attribution_map(c), theirs[0, 0])


@pytest.fixture(scope="module")
def coffee_session(coffee_path, device):
    model = load_model("fcn_resnet50", "untrained", device)
    return Session(model, preprocess(load_image(coffee_path), 72))


def test_component_segments_equal_captum(coffee_session):
    session = coffee_session
    pred = session.predict()
    segments = make_segments(pred.class_map, "component")
    assert segments.count > len(pred.present_classes)  # some class is split in pieces
    sweep = session.sweep(segments)
    mask = torch.as_tensor(segments.ids, device=session.input.device).view(
        1, 1, *segments.ids.shape)
    c = pred.present_classes[0]
    theirs = FeatureAblation(seed_wrapper(session)).attribute(
        session.input, feature_mask=mask, perturbations_per_eval=4, target=c)
    assert_close(sweep.attribution_map(c), theirs[0, 0])


@pytest.mark.parametrize("baseline", ["black", "blur", "#ff8000"])
def test_baselines_equal_captum(coffee_session, baseline):
    session = coffee_session
    pred = session.predict()
    segments = make_segments(pred.class_map, "class")
    sweep = session.sweep(segments, baseline=baseline)
    base = baseline_tensor(parse_baseline(baseline), session.input)
    c = pred.present_classes[0]
    theirs = FeatureAblation(seed_wrapper(session)).attribute(
        session.input, baselines=base, feature_mask=session.class_map_tensor, target=c)
    assert_close(sweep.attribution_map(c), theirs[0, 0])


@pytest.mark.parametrize(
    "agg",
    [Aggregation("sum"), Aggregation("pixel", pixel=(30, 20)),
     Aggregation("region", region=np.pad(np.ones((20, 20), bool), ((10, 42), (5, 0)))[:72, :])],
    ids=["sum", "pixel", "region"],
)
def test_other_aggregations_equal_captum(coffee_session, agg):
    session = coffee_session
    h, w = session.image.shape
    if agg.kind == "region":
        region = np.zeros((h, w), bool)
        region[10:30, 5:25] = True
        agg = Aggregation("region", region=region)
    pred = session.predict()
    targets = [0, 7, *pred.present_classes[:1]]
    gc = session.gradcam(targets, aggregation=agg)
    wrapper = seed_wrapper(session, agg)
    lgc = LayerGradCam(wrapper, session.model.layer())
    inp = seed_input(session)
    for c in targets:
        assert_close(gc.raw[c], lgc.attribute(inp, target=c)[0, 0])
    sweep = session.sweep(make_segments(pred.class_map, "class"), aggregation=agg)
    theirs = FeatureAblation(wrapper).attribute(session.input,
                                                feature_mask=session.class_map_tensor, target=7)
    assert_close(sweep.attribution_map(7), theirs[0, 0])


@pytest.mark.parametrize("name", ["deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"])
def test_mobilenet_models_default_layer(name, astronaut_path, device):
    model = load_model(name, "untrained", device)
    session = Session(model, preprocess(load_image(astronaut_path), 64))
    pred = session.predict()
    c = pred.present_classes[0]
    gc = session.gradcam([c])
    theirs = LayerGradCam(seed_wrapper(session), model.layer()).attribute(seed_input(session),
                                                                          target=c)
    assert_close(gc.raw[c], theirs[0, 0])


def test_named_layer_by_dotted_path(motorcycle_session):
    session = motorcycle_session
    c = session.predict().present_classes[0]
    gc = session.gradcam([c], layer="backbone.layer3[5].conv2")
    layer = session.model.module.backbone.layer3[5].conv2
    theirs = LayerGradCam(seed_wrapper(session), layer).attribute(seed_input(session), target=c)
    assert gc.layer == "backbone.layer3.5.conv2"
    assert_close(gc.raw[c], theirs[0, 0])


@pytest.mark.parametrize("kind", ["class", "component"])
def test_click_deltas_equal_feature_ablation(kind, motorcycle_path, device):
    """A single-segment click's per-class deltas are Captum's FeatureAblation (negated).

    FeatureAblation returns score(original) - score(ablated) for each target; the click
    reports after - before, for every class at once.
    """
    model = load_model("tiny", "untrained", device)  # 21 targets x every segment: keep it small
    session = Session(model, preprocess(load_image(motorcycle_path), 48))
    pred = session.predict()
    segments = make_segments(pred.class_map, kind)
    assert segments.count >= 2
    mask = torch.as_tensor(segments.ids, device=device).view(1, 1, *segments.ids.shape)
    fa = FeatureAblation(seed_wrapper(session))
    theirs = {c: fa.attribute(session.input, feature_mask=mask, target=c)[0, 0]
              for c in range(len(pred.categories))}
    for info in segments.info[:3]:
        outcome = session.ablate(segments, [info.id])
        pixel = tuple(int(v[0]) for v in np.nonzero(segments.ids == info.id))
        expected = np.array([-float(theirs[c][pixel]) for c in range(len(pred.categories))],
                            np.float32)
        assert_close(outcome.delta, expected)
