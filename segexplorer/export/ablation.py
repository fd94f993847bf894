"""Files for one ablation: the input the model saw, its new prediction, what changed."""

from __future__ import annotations

from pathlib import Path

from ..engine.ablation import summary_line
from ..engine.segments import Segments
from ..engine.session import AblationOutcome, Session
from ..render import changed_pixels, changed_pixels_map, decode_segmap, multilabel_overlay
from .atomic import ensure_folder, write_text
from .files import json_text, save_png


def ablation_report(session: Session, segments: Segments, outcome: AblationOutcome) -> dict:
    pred = session.predict()
    by_id = {s.id: s for s in segments.info}
    return {
        "image_size": list(session.image.original_size),
        "working_size": [int(v) for v in pred.shape],
        "model": session.model.name,
        "weights": session.model.weights,
        "outputs": pred.outputs,
        "segments_kind": segments.kind,
        "segments_partition": segments.partition,
        "segments": [
            {"id": sid, "class_index": by_id[sid].class_index,
             "class_name": by_id[sid].name(pred.categories),
             "pixels": by_id[sid].pixels,
             **({"classes": list(c)} if (c := by_id[sid].classes) is not None else {})}
            for sid in outcome.segment_ids
        ],
        "baseline": outcome.baseline,
        "aggregation": ("each class's logit summed over its own mask (z_c > logit(threshold)) "
                        "in the original prediction" if pred.multilabel else
                        "argmax-masked sum with the original prediction's mask"),
        "classes": [
            {"index": c, "name": name, "before": float(outcome.before[c]),
             "after": float(outcome.after[c]), "delta": float(outcome.delta[c])}
            for c, name in enumerate(pred.categories)
        ],
        "changed_pixel_fraction": outcome.changed_fraction,
        "changed_meaning": ("pixels whose set of classes changed" if pred.multilabel
                            else "pixels whose predicted class changed"),
        **({"class_shares_after": {name: float(outcome.masks_after[c].mean())
                                   for c, name in enumerate(pred.categories)}}
           if outcome.masks_after is not None else {}),
        "summary": summary_line(pred, outcome, segments),
    }


def write_ablation(out_dir: str | Path, session: Session, segments: Segments,
                   outcome: AblationOutcome) -> list[Path]:
    """Write the three PNGs and changes.json into ``out_dir`` (created).

    Everything is computed before the first file is written; changes.json comes last.
    """
    folder = ensure_folder(out_dir)
    pred = session.predict()
    if outcome.masks_after is not None:  # multilabel: each class's mask after, overlapping
        after = multilabel_overlay(outcome.ablated_input, outcome.masks_after, pred.colors)
        changed = changed_pixels(outcome.changed, pred.image)
    else:
        after = decode_segmap(outcome.class_map_after, pred.colors)
        changed = changed_pixels_map(pred.class_map, outcome.class_map_after, pred.image)
    pngs = [
        ("ablated_input.png", outcome.ablated_input),
        ("segmentation_after.png", after),
        ("changed_pixels.png", changed),
    ]
    report = json_text(ablation_report(session, segments, outcome))
    written = [save_png(folder / name, rgba) for name, rgba in pngs]
    written.append(write_text(folder / "changes.json", report))
    return written
