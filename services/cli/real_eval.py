"""Real-footage evaluation: unedited clips scored against hand-made ground truth.

A truth file (YAML, e.g. ``examples/real_clips.yaml``) lists clips. Each clip names its video
(relative paths resolve against ``--videos DIR``, else the file's ``videos:`` folder, else the
file's own folder), the zones a city operator draws on that camera with the rules enabled in each,
and the truth: per zone and rule, each situation a dispatcher would act on (the object, when it
began and ended, in seconds of the clip). A clip without truth is a negative: any incident there is
a false alarm. Rule parameters are set once for the whole file (``params``), never per clip, so the
scores measure settings that generalise.

A situation from ``start_seconds`` to ``end_seconds`` is expected to open an incident at
``start_seconds + dwell`` (the rule's ``dwell_seconds``). An incident of the same rule and zone
matches it when the incident is open at some time within the situation and it opened no more than
``start_tolerance_seconds`` before or after that expected moment; each situation matches at most
one incident, and every other incident (a duplicate too) is a false positive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from retina.algorithms.sdk import available_algorithms
from retina.algorithms.sdk.config import with_config_rules
from retina.services.cli.scenes import EPOCH_ORIGIN, Score, run_scene
from retina.services.core.config import (
    CameraConfig,
    CameraDefaults,
    ConfigError,
    RetinaConfig,
    format_validation_error,
    validate_camera,
)


class ClipZone(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    polygon: list[tuple[float, float]] = Field(min_length=3, description="normalised image coordinates")
    rules: list[str] = Field(min_length=1, description="rules enabled in this zone")
    description: str = ""


class TruthInterval(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rule: str
    zone: str
    object: str = Field(min_length=1, description="what a dispatcher would see, e.g. 'dark car at the kerb'")
    start_seconds: float = Field(ge=0, description="when the situation began (the vehicle stopped, ...)")
    end_seconds: float = Field(gt=0, description="when it ended, or the clip's end")
    start_tolerance_seconds: float | None = Field(
        default=None, ge=0, description="overrides the file's start tolerance"
    )

    @model_validator(mode="after")
    def _ordered(self) -> TruthInterval:
        if self.end_seconds <= self.start_seconds:
            raise ValueError("end_seconds must be after start_seconds")
        return self


class Clip(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    video: str
    description: str = ""
    zones: list[ClipZone] = Field(min_length=1)
    truth: list[TruthInterval] = Field(default_factory=list, description="empty: a negative clip")


class TruthFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    detector: dict[str, Any] = Field(default_factory=dict, description="the config's detector section")
    tracker: dict[str, Any] = Field(default_factory=dict, description="the config's tracker section")
    videos: str | None = Field(default=None, description="folder of the clips, relative to this file")
    start_tolerance_seconds: float = Field(default=5.0, ge=0)
    params: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per rule, parameters applied to every clip"
    )
    clips: list[Clip] = Field(min_length=1)


def read_yaml(path: Path) -> Any:
    """A YAML file's document; a missing or malformed file is a ConfigError naming it."""
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None


def is_truth_file(data: Any) -> bool:
    """Whether a parsed YAML document is a real-clip truth file (it has ``clips``), not a scene file."""
    return isinstance(data, dict) and "clips" in data


def parse_truth_file(data: Any) -> TruthFile:
    """Validate a truth file; every error names its field (``clips[0].truth[1].zone: ...``)."""
    try:
        spec = TruthFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    known = available_algorithms()
    names = ", ".join(sorted(known))
    errors = []
    for rule, params in spec.params.items():
        if rule not in known:
            errors.append(f"params.{rule}: unknown rule (known: {names})")
            continue
        try:
            with_config_rules(known[rule].manifest.params_model).model_validate(params)
        except ValidationError as exc:
            errors += format_validation_error(exc, f"params.{rule}")
    clip_names: set[str] = set()
    for c, clip in enumerate(spec.clips):
        if clip.name in clip_names:
            errors.append(f"clips[{c}].name: clip {clip.name!r} is defined twice")
        clip_names.add(clip.name)
        zones = {}
        for z, zone in enumerate(clip.zones):
            if zone.name in zones:
                errors.append(f"clips[{c}].zones[{z}].name: zone {zone.name!r} is defined twice")
            zones[zone.name] = zone
            errors += [f"clips[{c}].zones[{z}].rules: unknown rule {rule!r} (known: {names})"
                       for rule in zone.rules if rule not in known]  # fmt: skip
        for t, item in enumerate(clip.truth):
            where = f"clips[{c}].truth[{t}]"
            if item.zone not in zones:
                errors.append(f"{where}.zone: {item.zone!r} is not a zone of clip {clip.name!r} "
                              f"(zones: {', '.join(zones)})")  # fmt: skip
            elif item.rule not in zones[item.zone].rules:
                errors.append(f"{where}.rule: {item.rule!r} is not enabled in zone {item.zone!r} "
                              f"(rules: {', '.join(zones[item.zone].rules)})")  # fmt: skip
    if errors:
        raise ConfigError(errors)
    return spec


def dwell_of(spec: TruthFile, rule: str) -> float:
    """The ``dwell_seconds`` a rule runs with under this file's params (0 for a rule without one)."""
    params = available_algorithms()[rule].manifest.params_model.model_validate(spec.params.get(rule, {}))
    return float(getattr(params, "dwell_seconds", 0.0))


def clip_camera(spec: TruthFile, index: int) -> CameraConfig:
    """The camera configuration a clip is evaluated with: its zones, each rule with the file's params."""
    clip = spec.clips[index]
    rules: dict[str, list[dict[str, Any]]] = {}
    for zone in clip.zones:
        for rule in zone.rules:
            rules.setdefault(rule, []).append({"name": zone.name, "polygon": zone.polygon})
    algorithms = [{"name": r, "zones": z, "params": spec.params.get(r, {})} for r, z in rules.items()]
    raw = {"id": f"clip-{index}", "url": clip.video, "algorithms": algorithms}
    return validate_camera(raw, f"clips[{index}]", CameraDefaults())


def assign(
    truth: list[tuple[float, float, float]], found: list[tuple[float, float]], dwell: float
) -> list[tuple[float, float] | None]:
    """For each situation ``(start, end, tolerance)``, in order, the incident ``(opened, ended)`` it
    matches (None: missed). Earliest situations choose first, each the incident opened nearest to
    ``start + dwell``; an incident matches one situation at most."""
    unmatched = sorted(found)
    matched: list[tuple[float, float] | None] = [None] * len(truth)
    for index in sorted(range(len(truth)), key=lambda i: truth[i]):
        start, end, tolerance = truth[index]
        expected = start + dwell
        candidates = [
            f for f in unmatched if f[0] <= end and f[1] >= start and abs(f[0] - expected) <= tolerance
        ]
        if candidates:
            matched[index] = min(candidates, key=lambda f: abs(f[0] - expected))
            unmatched.remove(matched[index])
    return matched


def match_intervals(
    truth: list[tuple[float, float, float]], found: list[tuple[float, float]], dwell: float
) -> tuple[int, int, int, list[float]]:
    """TP, FP, FN and the start errors (opened − (start + dwell)) of matching ``truth`` with ``found``."""
    matched = assign(truth, found, dwell)
    errors = [m[0] - (t[0] + dwell) for t, m in zip(truth, matched, strict=True) if m is not None]
    return len(errors), len(found) - len(errors), len(truth) - len(errors), errors


def _resolve(path: str, base: Path) -> Path:
    return Path(path) if Path(path).is_absolute() else (base / path).resolve()


def evaluate_real(
    truth_file: Path,
    videos: Path | None = None,
    detector_overrides: dict[str, Any] | None = None,
    only: list[str] | None = None,
) -> dict[str, Any]:
    """Run the worker pipeline over every clip (or the clips named in ``only``); return per-rule
    precision, recall, F1 and start error."""
    base = truth_file.resolve().parent
    spec = parse_truth_file(read_yaml(truth_file))
    names = [clip.name for clip in spec.clips]
    missing = [name for name in only or [] if name not in names]
    if missing:
        raise ConfigError([f"--clip: no clip {name!r} in {truth_file} (clips: {', '.join(names)})"
                           for name in missing])  # fmt: skip
    selected = [i for i, clip in enumerate(spec.clips) if not only or clip.name in only]
    detector = {**spec.detector, **(detector_overrides or {})}
    if detector.get("model"):
        detector["model"] = str(_resolve(detector["model"], base))
    try:
        config = RetinaConfig.model_validate({"detector": detector, "tracker": spec.tracker})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    video_dir = videos if videos is not None else _resolve(spec.videos, base) if spec.videos else base
    runs = [(spec.clips[i], clip_camera(spec, i), _resolve(spec.clips[i].video, video_dir)) for i in selected]
    absent = [f"clips[{i}].video: not found: {run[2]}" for i, run in zip(selected, runs, strict=True)
              if not run[2].is_file()]  # fmt: skip
    if absent:  # every error before any run
        raise ConfigError(absent)
    scores: dict[str, Score] = {}
    clips_out = []
    for clip, camera, video in runs:
        events = run_scene(config, camera, video, quality=True)
        incidents: dict[str, dict[str, Any]] = {}
        for event in sorted(events, key=lambda e: e.last_seen_at):
            item = incidents.setdefault(
                event.incident_id,
                {
                    "rule": event.algorithm,
                    "zone": event.zone,
                    "opened": event.last_seen_at - EPOCH_ORIGIN,
                    "bbox": [round(v, 3) for v in event.bbox],
                    "details": event.details,
                },
            )
            item["ended"] = (event.ended_at or event.last_seen_at) - EPOCH_ORIGIN
        truth_out = []
        for spec_ in camera.algorithms:
            dwell = dwell_of(spec, spec_.name)
            for zone in spec_.zones:
                items = [t for t in clip.truth if t.rule == spec_.name and t.zone == zone.name]
                truth = [(t.start_seconds, t.end_seconds,
                          spec.start_tolerance_seconds if t.start_tolerance_seconds is None
                          else t.start_tolerance_seconds) for t in items]  # fmt: skip
                found = [(i["opened"], i["ended"]) for i in incidents.values()
                         if i["rule"] == spec_.name and i["zone"] == zone.name]  # fmt: skip
                matched = assign(truth, found, dwell)
                tp, fp, fn, errors = match_intervals(truth, found, dwell)
                score = scores.setdefault(spec_.name, Score(start_errors=[]))
                score.true_positives += tp
                score.false_positives += fp
                score.false_negatives += fn
                score.start_errors += errors
                truth_out += [
                    {**t.model_dump(include={"rule", "zone", "object", "start_seconds", "end_seconds"}),
                     "matched": m is not None,
                     "start_error_seconds": None if m is None else round(m[0] - t.start_seconds - dwell, 2)}
                    for t, m in zip(items, matched, strict=True)
                ]  # fmt: skip
        clips_out.append(
            {
                "clip": clip.name,
                "truth": truth_out,
                "incidents": [
                    {**i, "opened": round(i["opened"], 1), "ended": round(i["ended"], 1)}
                    for i in incidents.values()
                ],
            }
        )
    return {"algorithms": {name: _summary(s) for name, s in sorted(scores.items())}, "clips": clips_out}


def _summary(score: Score) -> dict[str, Any]:
    """A rule's figures; precision (recall) is None where nothing was raised (nothing was expected)."""
    errors = score.start_errors or []
    raised = score.true_positives + score.false_positives
    expected = score.true_positives + score.false_negatives
    precision = round(score.precision, 3) if raised else None
    recall = round(score.recall, 3) if expected else None
    return {
        "precision": precision,
        "recall": recall,
        "f1": round(score.f1, 3) if raised and expected else None,
        "true_positives": score.true_positives,
        "false_positives": score.false_positives,
        "false_negatives": score.false_negatives,
        "mean_abs_start_error_seconds": round(float(np.mean(np.abs(errors))), 2) if errors else None,
    }


def format_real_report(report: dict[str, Any]) -> str:
    """The per-rule table ("-": nothing raised, nothing expected), then each clip's incidents."""

    def cell(value: float | None, width: int, digits: int = 2) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:{width}.{digits}f}"

    header = ("rule", "precision", "recall", "F1", "TP", "FP", "FN", "start err s")
    lines = ["{:18} {:>9} {:>7} {:>6} {:>4} {:>4} {:>4} {:>11}".format(*header)]
    for name, s in report["algorithms"].items():
        lines.append(
            f"{name:18} {cell(s['precision'], 9)} {cell(s['recall'], 7)} {cell(s['f1'], 6)} "
            f"{s['true_positives']:4} {s['false_positives']:4} {s['false_negatives']:4} "
            f"{cell(s['mean_abs_start_error_seconds'], 11, 1)}"
        )
    lines += ["", "clip                 found/truth  incidents (rule zone opened-ended s)"]
    for clip in report["clips"]:
        found = "; ".join(
            f"{i['rule']} {i['zone']} {i['opened']:.1f}-{i['ended']:.1f}" for i in clip["incidents"]
        )
        hits = f"{sum(t['matched'] for t in clip['truth'])}/{len(clip['truth'])}"
        lines.append(f"{clip['clip']:20} {hits:>11}  {found or '-'}")
    return "\n".join(lines)
