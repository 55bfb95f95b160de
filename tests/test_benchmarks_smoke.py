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
    assert "| exact p50 ms | exact p99 ms | retina p50 ms | retina p99 ms | retina recall@10 " in out, out
    figure = r"[\d.]+ \| " * 4  # exact and retina p50/p99 ms
    for case in ("no filter", "1 camera of 1000", "100 cameras, vehicles", "1 hour of the day"):
        row = re.search(rf"^\| {case} \| [\d,]+ \| {figure}(\d\.\d+) \| True \|$", out, re.MULTILINE)
        assert row and float(row.group(1)) >= 0.9, out  # recall under the same filter as exact search
    assert re.search(rf"speed-up of retina over exact search, no filter \(p50\): {RATIO}", out), out
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["kind"] == "ivf" and figures["filters_held"] and figures["speedup_p50"] > 0
    assert min(figures["recall_at_10"].values()) >= 0.9, figures


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


def test_pipeline_throughput_camera_mix():
    needs_shared(VIDEOS / "intersection.mp4", MODEL)
    # a kerb camera (illegal_parking and the gate on the kerb zone) and the clip's still street
    mix = "intersection.mp4:1,still:intersection.mp4:1"
    out = run_benchmark("pipeline_throughput", "--mix", mix, "--videos", str(VIDEOS), "--model", str(MODEL))
    assert "1 x intersection.mp4, 1 x intersection-still-4s.mp4" in out, out
    assert re.search(r"^yolov8n_coco_int8\.onnx +640x480 -> 640x640 +\d+\.\d$", out, re.MULTILINE), out
    for row in ("naive model.track, every frame", "retina, motion gate off", "retina, motion gate on"):
        assert re.search(rf"^yolov8n_coco_int8\.onnx +{row} +\d+\.\d\d +\d+\.\d\d +(-|\d+%)$", out, re.M), out
    for ratio in ("gate on / naive", "gate on / gate off"):
        found = re.search(rf"ratio {ratio} \(yolov8n_coco_int8\.onnx\): {RATIO}; by CPU time {RATIO}", out)
        assert found and float(found.group(1)) > 0 and float(found.group(2)) > 0, out
    decoding = r"decoding every frame \(yolov8n_coco_int8\.onnx\): (\d+\.\d) CPU-ms per camera-second,"
    decoding += rf" the naive loop (\d+): a pipeline that decodes every frame is at most {RATIO} the naive"
    decoding += " loop$"
    found = re.search(decoding, out, re.MULTILINE)
    assert found, out
    decode_ms, naive_ms, bound = float(found.group(1)), int(found.group(2)), float(found.group(3))
    assert 0 < decode_ms < naive_ms and bound == pytest.approx(naive_ms / decode_ms, rel=0.05), out
    assert re.search(
        r"skipped by clip .*: intersection\.mp4 \d+%, intersection-still-4s\.mp4 \d+%$", out, re.M
    ), out


@pytest.mark.slow
def test_retrieval_quality(tmp_path: Path):
    needs_shared(VIDEOS, MODEL, BACKBONE)
    crops = tmp_path / "crops"
    out = run_benchmark(
        "retrieval_quality", "--videos", str(VIDEOS), "--model", str(MODEL), "--backbone", str(BACKBONE),
        "--export-crops", str(crops),
    )  # fmt: skip
    ratios = re.findall(rf"ratio best \(.+\) / colour baseline, recall@1: .* = {RATIO}", out)
    assert ratios, out
    assert re.search(r"^vehicle +colour +\d+ +\d+ +\d\.\d\d +\d\.\d\d$", out, re.MULTILINE), out
    # The exported set is what `retina search eval` reads: both "cameras" of each identity.
    names = sorted(p.name for p in (crops / "vehicle").glob("*.jpg"))
    assert any("_c1_" in n for n in names) and any("_c2_" in n for n in names), names
    scored = subprocess.run(
        [sys.executable, "-m", "retina.services.cli", "search", "eval", str(crops / "vehicle"),
         "--family", "vehicle", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    assert 0.0 < json.loads(scored.stdout)["recall@1"] <= 1.0


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


def test_webhook_delivery():
    out = run_benchmark("webhook_delivery")
    rows = re.findall(rf"^\| (\d+) ms \| (\d+) \| (\d+) \| {RATIO} \|$", out, re.MULTILINE)
    assert [row[0] for row in rows] == ["0", "20"], out
    assert all(int(direct) > 0 and int(rate) > 0 and float(ratio) > 0 for _, direct, rate, ratio in rows), out


def test_plate_search():
    out = run_benchmark("plate_search")
    rows = re.findall(rf"^\| `(.+?)` \| .+ \| .+ \| (\d+) \| {RATIO} \|$", out, re.MULTILINE)
    assert [row[0] for row in rows] == ["浙B2V9L7", "浙B2V9L?", "浙B*", "*9L7"], out
    assert int(rows[0][1]) == 2, out  # 浙B2V9L7 and its misread 浙82V9L7


def test_alert_latency():
    video, small = VIDEOS / "intersection.mp4", SHARED / "models" / "yolo11n_coco_int8_320.onnx"
    needs_shared(video, small)
    out = run_benchmark("alert_latency", "--video", str(video), "--model", str(small))
    figures = r" \| ".join([r"(-?\d+)"] * 6)  # stream and store p50/p99/max ms
    # --smoke has no settling time: the load start row holds only what opened while registering
    cells = r" \| ".join([r"(-|\d+)"] * 6)
    start = rf"^\| load start: 3 cameras registered, first 0 s \| (\d+) \| {cells} \| 0 \|$"
    assert re.search(start, out, re.MULTILINE), out
    for phase in (
        "baseline: 1 camera",
        r"load: 3 cameras \(1 RTSP, 1 on a still street\), next 10 s",
        r"burst: 2 cameras, \d+ opening within 1 s",
    ):
        row = re.search(rf"^\| {phase} \| (\d+) \| {figures} \| (\d+) \|$", out, re.MULTILINE)
        assert row, out
        count, *ms, not_stored = (int(g) for g in row.groups())
        assert count > 0 and not_stored == 0, out
        stream, store = ms[:3], ms[3:]
        assert 0 <= stream[0] <= stream[1] <= stream[2] and 0 <= store[0] <= store[1] <= store[2], out
        assert store[0] >= stream[0], out  # the store reads the stream: never ahead of it
    for phase in ("load", "burst"):
        assert re.search(rf"^{phase} p99 / 1 s target: stream {RATIO}, store {RATIO}$", out, re.MULTILINE), (
            out
        )
