"""Every benchmark runs at its ``--smoke`` size and prints its figures with a ratio against the
baseline it measures in the same run (the figures themselves mean little at this size)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MODEL, REPO, SHARED, VIDEOS

BACKBONE = SHARED / "models" / "yolov8n_coco_deq.pt"
RATIO = r"(\d+\.\d+)x"


def run_benchmark(name: str, *args: str) -> str:
    """Run ``benchmarks/<name>.py --smoke ARGS``; return its output, failing on a non-zero exit."""
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / f"{name}.py"), "--smoke", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, f"{name} exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result.stdout


def needs_shared(*paths: Path) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        pytest.skip(f"shared data missing: {', '.join(missing)}")


def test_scheduler_placement():
    out = run_benchmark("scheduler_placement")
    assert "| baseline: round-robin from scratch |" in out and "| retina `placement.place` |" in out
    moved = re.search(
        r"cameras moved after the failure, retina / baseline: ([\d,]+) / ([\d,]+) = (\d+\.\d+)", out
    )
    assert moved, out
    ours, baseline, ratio = (float(g.replace(",", "")) for g in moved.groups())
    assert ratio == pytest.approx(ours / baseline, abs=1e-3) and ours < baseline  # stability pays off


def test_search_index():
    out = run_benchmark("search_index")
    assert "| exact Flat (baseline) |" in out and "| hnsw (retina shard) |" in out, out
    assert re.search(rf"speed-up of hnsw over exact search \(p50\): {RATIO}", out), out
    assert "filters held: True" in out
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["kind"] == "hnsw" and figures["recall_at_10"] >= 0.9 and figures["speedup_p50"] > 0


@pytest.mark.slow
def test_pipeline_throughput():
    video = VIDEOS / "intersection.mp4"
    needs_shared(video, MODEL)
    out = run_benchmark("pipeline_throughput", "--video", str(video), "--model", str(MODEL))
    assert "baseline: model.track(stream=True), every frame" in out, out
    ratio = re.search(rf"ratio retina \(batched\) / baseline: {RATIO}", out)
    assert ratio and float(ratio.group(1)) > 0, out
    handoff = {}
    for path in ("no burst", "burst, old path", "burst, new path"):
        row = re.search(rf"^{path}\b.* +\d+\.\d +(\d+) ms / \d+\.\d ms$", out, re.MULTILINE)
        assert row, out
        handoff[path] = int(row.group(1))
    assert handoff["burst, new path"] < handoff["burst, old path"], out  # the analysis thread hands off
    burst = re.search(rf"ratio burst / no burst, new path: {RATIO}; old path: {RATIO}", out)
    assert burst and float(burst.group(1)) > 0 and float(burst.group(2)) > 0, out
    for path in ("old", "new"):  # every burst event reached the outbox, on either path
        delivered = re.search(rf"^{path} path: (\d+)/(\d+) burst events in the outbox, 0 dropped", out, re.M)
        assert delivered and delivered.group(1) == delivered.group(2) != "0", out


@pytest.mark.slow
def test_retrieval_quality():
    needs_shared(VIDEOS, MODEL, BACKBONE)
    out = run_benchmark(
        "retrieval_quality", "--videos", str(VIDEOS), "--model", str(MODEL), "--backbone", str(BACKBONE)
    )
    ratios = re.findall(rf"ratio best \(.+\) / colour baseline, recall@1: .* = {RATIO}", out)
    assert ratios, out
    assert re.search(r"^vehicle +colour +\d+ +\d+ +\d\.\d\d +\d\.\d\d$", out, re.MULTILINE), out


@pytest.mark.slow
def test_faults():
    video = VIDEOS / "intersection.mp4"
    needs_shared(video, MODEL)
    out = run_benchmark("faults", "--video", str(video), "--model", str(MODEL))
    for fault in ("worker", "nats"):
        assert re.search(rf"^{fault} +1/1 +\d+\.\d +\d+\.\d$", out, re.MULTILINE), out
    assert re.search(rf"worst recovery / 10 s goal: .* = {RATIO}", out), out
    assert re.search(r"^incident_events_lost +0$", out, re.MULTILINE), out
    assert re.search(r"^incident_events_duplicated +0$", out, re.MULTILINE), out


def test_quality_monitor():
    video = VIDEOS / "intersection.mp4"
    needs_shared(video, MODEL)
    out = run_benchmark("quality_monitor", "--video", str(video), "--model", str(MODEL))
    assert "baseline: detector, one frame per call" in out and "quality monitor, every check" in out, out
    per_frame = re.search(rf"ratio monitor / detector per frame: {RATIO}", out)
    share = re.search(rf"monitor share of the detector: {RATIO}", out)
    assert per_frame and share, out
    assert 0 < float(share.group(1)) < 0.5, out  # far below the detector's cost, even on a busy machine
