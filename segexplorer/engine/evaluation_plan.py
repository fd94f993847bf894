"""What an evaluation of explanations does and costs, known before torch has loaded.

The settings of ``engine.evaluation`` (deletion and insertion curves, the chance band,
the model-randomisation check, Captum's infidelity and sensitivity) and an upper bound
on the images it sends through the model, so that the window and the CLI can say what
an evaluation costs before it runs. docs/evaluation.md defines each metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .errors import UserError
from .methods import ImageFacts, MethodOptions, method_cost

CURVES = ("deletion_segments", "insertion_segments", "deletion_pixels", "insertion_pixels")


@dataclass(frozen=True)
class EvaluationSettings:
    """How an evaluation runs (every field is in its report)."""

    pixel_steps: int = 20  # K: deletion / insertion by pixel in K steps of equal counts
    chance_runs: int = 10  # N seeded random rankings: the chance band
    seed: int = 0  # the random rankings', the randomised layers' and the noises' seed
    mprt: bool = True  # the cascading model-parameter randomisation test
    mprt_steps: int = 5  # maps recomputed after this many stages of randomisation
    survive_threshold: float = 0.5  # Spearman with the original at the last stage, above
    infidelity: bool = True  # captum.metrics.infidelity
    infidelity_samples: int = 10  # noise draws
    infidelity_std: float = 0.1  # their standard deviation, in the model's normalised units
    sensitivity: bool = True  # captum.metrics.sensitivity_max
    sensitivity_samples: int = 5  # perturbed inputs (Captum's default is 10: costly here)
    sensitivity_radius: float = 0.02  # L-infinity radius (Captum's default)

    def check(self) -> EvaluationSettings:
        if not 1 <= self.pixel_steps <= 1000:
            raise UserError(f"--pixel-steps {self.pixel_steps}: use 1 to 1000 steps.")
        if not 0 <= self.chance_runs <= 1000:
            raise UserError(f"--chance-runs {self.chance_runs}: use 0 to 1000 random "
                            "rankings.")
        if not 1 <= self.mprt_steps <= 100:
            raise UserError(f"--mprt-steps {self.mprt_steps}: use 1 to 100.")
        if self.infidelity_samples < 1 or self.sensitivity_samples < 1:
            raise UserError("Infidelity and sensitivity need at least one perturbation.")
        if self.infidelity_std <= 0 or self.sensitivity_radius <= 0:
            raise UserError("The noise of infidelity and the radius of sensitivity must be "
                            "positive.")
        return self

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class EvaluationCost:
    """An upper bound on the images an evaluation sends through the model."""

    maps: int  # the methods' own maps (none when they are already computed)
    curves: int  # deletion and insertion images, shared by every class and method
    mprt: int
    infidelity: int
    sensitivity: int
    backward: int  # backward passes of the gradient methods, all stages together

    @property
    def forward(self) -> int:
        return self.maps + self.curves + self.mprt + self.infidelity + self.sensitivity

    def seconds(self, forward_seconds: float) -> float:
        return forward_seconds * (self.forward + 2 * self.backward)

    def describe(self) -> str:
        parts = [f"{self.curves} for the curves"]
        if self.maps:
            parts.insert(0, f"{self.maps} for the maps")
        for name, count in (("the randomisation check", self.mprt),
                            ("infidelity", self.infidelity),
                            ("sensitivity", self.sensitivity)):
            if count:
                parts.append(f"{count} for {name}")
        text = f"at most {self.forward} forward passes ({', '.join(parts)})"
        if self.backward:
            text += f" and {self.backward} backward passes"
        return text


def evaluation_cost(facts: ImageFacts, methods: Sequence[str], options: MethodOptions,
                    settings: EvaluationSettings, computed: Sequence[str] = ()
                    ) -> EvaluationCost:
    """The most an evaluation of ``methods`` for ``facts.targets`` classes can cost
    (``computed``: methods whose maps exist already). Perturbed images are shared by
    every class and method, so repeated ones are counted once: the count is a bound."""
    t, s = facts.targets, max(facts.segments, 1)
    per_method = [method_cost(m, facts, options) for m in methods]
    maps = sum(c.forward for m, c in zip(methods, per_method) if m not in computed)
    backward = sum(c.backward for m, c in zip(methods, per_method) if m not in computed)
    rankings = len(methods) * t + settings.chance_runs
    coalitions = min(2 ** s if s < 31 else 2 ** 31, rankings * (2 * s - 1) + 1)
    pixels = rankings * (2 * settings.pixel_steps - 1)
    all_maps = sum(c.forward for c in per_method)
    all_backward = sum(c.backward for c in per_method)
    # each randomised model and each perturbed input is a session of its own: its
    # prediction (one pass: the scores the perturbation methods start from) and then
    # every method's maps
    mprt = settings.mprt_steps * (1 + all_maps) if settings.mprt else 0
    sensitivity = settings.sensitivity_samples * (1 + all_maps) if settings.sensitivity else 0
    backward += (settings.mprt_steps * all_backward if settings.mprt else 0) + (
        settings.sensitivity_samples * all_backward if settings.sensitivity else 0)
    return EvaluationCost(maps=maps, curves=coalitions + pixels, mprt=mprt,
                          infidelity=settings.infidelity_samples if settings.infidelity else 0,
                          sensitivity=sensitivity, backward=backward)
