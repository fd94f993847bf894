"""Every registered method equals its library call, for every class, from shared passes.

For two architectures (an untrained torchvision FCN-ResNet50, with its in-place ReLUs and
residual additions, and a model card: smp's Unet with a ResNet-18 encoder) on real photos,
``engine.attribution.compute`` is compared with Captum's own calls on the same wrapped
model and input, class by class:

* ``shapley`` exact: ``ShapleyValues`` (which walks all S! orders) with the segments,
  numbered by row, as ``feature_mask``; sampled: ``ShapleyValueSampling`` after
  ``torch.manual_seed(seed)``, i.e. the same permutations. Tolerance for both: 1e-5
  relative to the largest value (exact: our float64 weighted sum over coalitions against
  Captum's float32 sum over orders; sampled: the same float32 operations in the same
  order, in practice bit-identical);
* ``occlusion``: ``Occlusion`` with windows (3, k, k) and strides (3, s, s);
* ``ig`` / ``layer_ig``: ``IntegratedGradients`` / ``LayerIntegratedGradients`` (same
  n_steps and rule; maps summed over channels, as Captum's visualisation does);
* ``guided_gradcam``: ``GuidedGradCam`` (summed over channels);
* ``hirescam`` (not in Captum): a direct autograd computation (gradient times
  activation, summed over channels), and pytorch-grad-cam's ``HiResCAM`` on a
  ``SemanticSegmentationTarget`` (the seed's argmax-masked score), after applying
  pytorch-grad-cam's own ReLU and min-max scaling to our map.

And the cost: one set of model evaluations serves every class (2^S - 1 coalitions, one
pass per window, n_steps images for integrated gradients however many classes).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import (
    GuidedGradCam,
    IntegratedGradients,
    LayerIntegratedGradients,
    Occlusion,
    ShapleyValues,
    ShapleyValueSampling,
)
from parity import assert_close  # 1e-5 of the reference's largest magnitude

from segexplorer.engine.aggregation import Aggregation, make_wrapper
from segexplorer.engine.attribution import compute
from segexplorer.engine.image import load_image, preprocess
from segexplorer.engine.methods import METHODS, ImageFacts, MethodOptions, method_cost
from segexplorer.engine.models import load_model
from segexplorer.engine.segments import make_segments
from segexplorer.engine.session import Session


@pytest.fixture(scope="module")
def builtin_session(motorcycle_path, device):
    model = load_model("fcn_resnet50", "untrained", device)
    return Session(model, preprocess(load_image(motorcycle_path), 36))  # 3 classes, 6 components


@pytest.fixture(scope="module")
def card_session(card_models, astronaut_path, device):
    model = load_model(card_models.smp, None, device)
    prepared = preprocess(load_image(astronaut_path), model.default_size, model.normalization)
    return Session(model, prepared)


@pytest.fixture(params=["builtin", "card"])
def session(request):
    return request.getfixturevalue(f"{request.param}_session")


def wrapper(session: Session):
    return make_wrapper(session.model.logits, Aggregation(), session.class_map_tensor)


class Wrapped(torch.nn.Module):
    """The seed's wrapper as a module (GuidedGradCam and pytorch-grad-cam want one)."""

    def __init__(self, session: Session, scores: bool = True) -> None:
        super().__init__()
        self.net = session.model.module
        self.fn = wrapper(session) if scores else session.model.logits

    def forward(self, x):
        return self.fn(x)


def targets_of(session: Session) -> list[int]:
    """Two predicted classes, and one that is not predicted if any (its maps are Captum's
    too): Captum is called once per class, so the tests compare a few."""
    present = session.predict().present_classes
    absent = [c for c in range(session.model.num_classes) if c not in present]
    return [*present[:2], *absent[:1]]


def feature_mask(session: Session, kind: str = "class") -> torch.Tensor:
    segments = make_segments(session.predict().class_map, kind)
    return torch.as_tensor(segments.rows_map(), device=session.input.device).view(
        1, 1, *segments.ids.shape)


def test_exact_shapley_equals_shapley_values_for_every_class(session):
    targets = targets_of(session)
    every = sorted(set(session.predict().present_classes) | set(targets))
    before = session.forward_images
    ours = compute(session, "shapley", every, MethodOptions(shapley_mode="exact"))
    s = make_segments(session.predict().class_map, "class").count
    assert 2 <= s <= 4
    # images through the model on every device (a chunk of k coalitions counts k)
    assert ours.forward == session.forward_images - before == 2 ** s - 1  # all classes
    table = ours.shapley
    assert table is not None and table.exact and table.interactions is not None
    sv = ShapleyValues(wrapper(session))
    mask = feature_mask(session)
    for c in targets:
        theirs = sv.attribute(session.input, feature_mask=mask, target=c)
        assert torch.equal(theirs[0, 0], theirs[0, 2])  # Captum's channels are equal
        assert_close(ours.maps[c], theirs[0, 0])
    # efficiency: the values add up to score(image) - score(every segment removed)
    full, empty = table.full_scores, table.empty_scores
    np.testing.assert_allclose(table.values.sum(0), full - empty, rtol=1e-4,
                               atol=1e-4 * np.abs(full - empty).max())
    np.testing.assert_array_equal(table.interactions, table.interactions.transpose(1, 0, 2))


def test_sampled_shapley_equals_shapley_value_sampling_with_the_same_permutations(session):
    targets, seed = targets_of(session), 7
    options = MethodOptions(shapley_mode="sampling", n_samples=3, seed=seed)
    rng_before = torch.get_rng_state()
    ours = compute(session, "shapley", targets, options)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the process's RNG untouched
    s = make_segments(session.predict().class_map, "class").count
    assert ours.forward <= min(2 ** s - 1, 3 * (s - 1) + 1)  # repeated coalitions once
    svs = ShapleyValueSampling(wrapper(session))
    mask = feature_mask(session)
    for c in targets:
        torch.manual_seed(seed)
        theirs = svs.attribute(session.input, feature_mask=mask, target=c, n_samples=3)
        assert_close(ours.maps[c], theirs[0, 0])


def test_sampled_shapley_with_component_segments_and_a_colour_baseline(builtin_session):
    session = builtin_session
    segments = make_segments(session.predict().class_map, "component")
    assert segments.count > make_segments(session.predict().class_map, "class").count
    c = session.predict().present_classes[0]
    options = MethodOptions(segments="component", shapley_mode="sampling", n_samples=2,
                            seed=3, baseline="#ff8000")
    ours = compute(session, "shapley", [c], options)
    base = torch.zeros_like(session.input) + session.baseline_value("#ff8000")
    torch.manual_seed(3)
    theirs = ShapleyValueSampling(wrapper(session)).attribute(
        session.input, baselines=base, feature_mask=feature_mask(session, "component"),
        target=c, n_samples=2)
    assert_close(ours.maps[c], theirs[0, 0])


def test_occlusion_equals_captum_for_every_class_from_one_pass_per_window(session):
    targets = targets_of(session)
    options = MethodOptions(window=18, stride=15, baseline="blur")
    before = session.forward_images
    ours = compute(session, "occlusion", targets, options)
    h, w = session.image.shape
    windows = (-(-(h - 18) // 15) + 1) * (-(-(w - 18) // 15) + 1)
    assert ours.forward == session.forward_images - before == windows  # images, any chunks
    occ = Occlusion(wrapper(session))
    base = session.baseline_value("blur")
    for c in targets:
        theirs = occ.attribute(session.input, sliding_window_shapes=(3, 18, 18),
                               strides=(3, 15, 15), baselines=base, target=c)
        assert torch.equal(theirs[0, 0], theirs[0, 1])
        assert_close(ours.maps[c], theirs[0, 0])


@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_trapezoid"])
def test_integrated_gradients_equal_captum_for_every_class(session, rule):
    targets = targets_of(session)
    options = MethodOptions(n_steps=4, ig_method=rule)
    before = session.forward_images
    ours = compute(session, "ig", targets, options)
    # images, however they were chunked: the 4 steps once for all classes, each step back
    # once per class
    assert ours.forward == session.forward_images - before == 4
    assert ours.backward == 4 * len(targets)
    ig = IntegratedGradients(wrapper(session))
    for c in targets:
        theirs = ig.attribute(session.input, target=c, n_steps=4, method=rule)
        assert_close(ours.maps[c], theirs[0].sum(0))


def test_layer_integrated_gradients_equal_captum_for_every_class(session):
    targets = targets_of(session)
    options = MethodOptions(n_steps=4, baseline="black", upsample="bilinear")
    ours = compute(session, "layer_ig", targets, options)
    layer = session.model.layer()
    lig = LayerIntegratedGradients(wrapper(session), layer)
    base = session.baseline_value("black")
    full_base = torch.zeros_like(session.input) + base
    for c in targets:
        theirs = lig.attribute(session.input, baselines=full_base, target=c, n_steps=4)
        summed = theirs.sum(dim=1, keepdim=True)
        assert_close(ours.raw[c], summed[0, 0])
        up = torch.nn.functional.interpolate(summed, session.image.shape, mode="bilinear")
        assert_close(ours.maps[c], up[0, 0])
    assert ours.layer_shape == tuple(theirs.shape)


def test_guided_gradcam_equals_captum_for_every_class(session):
    targets = targets_of(session)
    ours = compute(session, "guided_gradcam", targets)
    ggc = GuidedGradCam(Wrapped(session), session.model.layer())
    inp = session.input.clone().requires_grad_(True)
    for c in targets:
        theirs = ggc.attribute(inp, target=c)
        assert_close(ours.maps[c], theirs[0].sum(0))


def test_hirescam_is_gradient_times_activation_summed_over_channels(session):
    """A direct autograd computation: no spatial mean of the gradient (Grad-CAM's)."""
    targets = targets_of(session)
    ours = compute(session, "hirescam", targets)
    layer = session.model.layer()
    captured = []
    handle = layer.register_forward_hook(lambda m, i, o: captured.append(o))
    inp = session.input.clone().requires_grad_(True)
    try:
        scores = wrapper(session)(inp)
    finally:
        handle.remove()
    act = captured[-1]
    for i, c in enumerate(targets):
        (grad,) = torch.autograd.grad(scores[0, c], act, retain_graph=i < len(targets) - 1)
        direct = (grad * act).sum(dim=1)[0]
        assert_close(ours.raw[c], direct)
        up = torch.nn.functional.interpolate(direct[None, None], session.image.shape)
        assert_close(ours.maps[c], up[0, 0])


def test_hirescam_equals_pytorch_grad_cam_on_a_segmentation_target(session):
    from pytorch_grad_cam import HiResCAM
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

    pred = session.predict()
    targets = pred.present_classes[:2]
    ours = compute(session, "hirescam", targets)
    h, w = session.image.shape
    with HiResCAM(model=Wrapped(session, scores=False),
                  target_layers=[session.model.layer()]) as cam:
        for c in targets:
            mask = (pred.class_map == c).astype(np.float32)  # the seed's argmax mask
            theirs = cam(input_tensor=session.input.clone().requires_grad_(True),
                         targets=[SemanticSegmentationTarget(c, mask)])[0]
            # pytorch-grad-cam's own post-processing applied to our raw map: ReLU,
            # min-max scaling and its resize to the input, then its final scaling
            expected = scale_cam_image(scale_cam_image(np.maximum(ours.raw[c], 0)[None],
                                                       (w, h)))[0]
            np.testing.assert_allclose(expected, theirs, atol=1e-5)


def test_all_methods_answer_every_class_and_report_their_cost(builtin_session):
    session = builtin_session
    targets = session.predict().present_classes
    h, w = session.image.shape
    s = make_segments(session.predict().class_map, "class").count
    options = MethodOptions(n_steps=2, window=18, stride=18)
    facts = ImageFacts(h, w, s, len(targets))
    for method in METHODS:
        maps = compute(session, method, targets, options)
        assert maps.method == method and set(maps.maps) == set(targets)
        for c in targets:
            assert maps.maps[c].shape == (h, w) and np.isfinite(maps.maps[c]).all()
        estimate = method_cost(method, facts, options)
        assert maps.forward <= estimate.forward, method  # the estimate is an upper bound
        if method not in ("shapley",):
            assert maps.forward == estimate.forward, method
        assert maps.backward == estimate.backward, method


def test_a_layer_method_refuses_an_unused_layer_in_one_line(card_models, astronaut_path):
    from segexplorer.engine.errors import UserError

    model = load_model("tiny", "untrained", "cpu")
    session = Session(model, preprocess(load_image(astronaut_path), 24))
    for method in ("hirescam", "layer_ig"):
        with pytest.raises(UserError, match="layer"):
            compute(session, method, [0], MethodOptions(layer="nonexistent.layer", n_steps=2))


@pytest.mark.parametrize("source", ["segformer", "binary", "python"])
def test_every_method_serves_every_model_source(card_models, astronaut_path, source):
    """A Hugging Face SegFormer (GELU, no ReLU: Guided Grad-CAM is plain gradients there,
    as in Captum), a binary model (one channel z explained as [-z, z]) and a python
    factory returning a tuple: every method runs, and a few equal Captum's calls."""
    model = load_model(getattr(card_models, source), None, "cpu")
    prepared = preprocess(load_image(astronaut_path), 28, model.normalization)
    session = Session(model, prepared)
    targets = session.predict().present_classes[:2]
    options = MethodOptions(n_steps=2, window=14, stride=14, n_samples=2)
    h, w = session.image.shape
    results = {m: compute(session, m, targets, options) for m in METHODS}
    for method, maps in results.items():
        for c in targets:
            assert maps.maps[c].shape == (h, w) and np.isfinite(maps.maps[c]).all(), method
    ig = IntegratedGradients(wrapper(session))
    occ = Occlusion(wrapper(session))
    ggc = GuidedGradCam(Wrapped(session), model.layer())
    for c in targets:
        assert_close(results["ig"].maps[c],
                     ig.attribute(session.input, target=c, n_steps=2)[0].sum(0))
        assert_close(results["occlusion"].maps[c],
                     occ.attribute(session.input, sliding_window_shapes=(3, 14, 14),
                                   strides=(3, 14, 14), target=c)[0, 0])
        assert_close(results["guided_gradcam"].maps[c],
                     ggc.attribute(session.input.clone().requires_grad_(True),
                                   target=c)[0].sum(0))
