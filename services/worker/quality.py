"""The video-quality monitor (视频质量诊断) of one camera: cheap checks on sampled frames.

One :class:`QualityMonitor` per camera runs on its decode thread, on one sampled frame every
``quality.sample_seconds`` (1 s by default) of stream time. Each sample is reduced once — a grey
picture 320 and 160 px wide, a colour thumbnail 80 px wide, a native-resolution crop of at most
320 x 240 for noise — and every check scores it (see :data:`retina.services.core.quality.CHECKS`):

* **frozen** — share of the 160-px picture that changed by 3 grey levels or more since the previous
  sample; below ``frozen.min_changed_share`` the picture counts as unchanged, and the score is how
  long it has been so;
* **blur** — Crete et al.'s no-reference blur on the 320-px picture: how little of the picture's
  variation an extra blur removes (a sharp picture loses much, a blurred one little);
* **dark**, **overexposed** — share of the 160-px picture below grey 40 / at or above 245;
* **colour_cast** — the Lab chroma of the thumbnail's mean colour (0 for a neutral picture);
* **noise** — on the native crop: the noise sigma by Immerkær's operator (median, so edges do not
  count) or the amplitude of line interference (rows or columns alternating), whichever is larger;
* **occluded** — share of the 16 x 9 cells of the 160-px picture that are now uniform (std < 3)
  but were textured in the cell's slow baseline (std ≥ 6; the baseline learns over about
  :data:`OCCLUSION_BASELINE_SECONDS` and stops learning while a cover is suspected);
* **scene_change** — the reference view is cut into 6 x 4 tiles; each textured tile is looked for
  at its place (shifts up to 2 % of the width are shake, not a move). A tile found (normalised
  cross-correlation ≥ 0.6) in any of the last :data:`SCENE_WINDOW_SAMPLES` samples is in place; one
  never found although it was calm (not changing by 8 grey levels from sample to sample: people
  and traffic are skipped, not judged) has moved away. The score is the share of judged tiles that
  moved; with fewer than a quarter of the textured tiles judged it is 0 (cannot tell yet). It is
  not judged while the picture is covered, frozen or dark.

A camera without a reference view takes one (the median of its last 5 samples) once the picture
has had no problem for ``reference_settle_seconds``; ops take a new one with
:meth:`QualityMonitor.capture_reference` (``retina cameras reference``). Rules see the reference view
too (:attr:`Reference.view`, ``AnalysedFrame.reference``): ``exposed_trash`` finds litter that was
there before the camera started against a confirmed one.

The monitor decides whether the camera's rules run (:attr:`QualityMonitor.status`): a moved camera's
rules are **suspended** (its zones no longer mean what ops drew) and, for the checks in
``pause_rules_on`` (``occluded`` by default), **paused** — both as soon as the score reaches
``enter``, before the problem is confirmed, so no incident ends falsely in between. Measured cost
and detections: ``benchmarks/quality_monitor.py`` and ``tests/test_quality.py``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

import cv2
import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from retina.algorithms.sdk import ReferenceView
from retina.services.core.quality import (
    CHECKS,
    NO_SIGNAL,
    RULE_HOLD_NOTES,
    CheckState,
    QualityCheck,
    QualityConfig,
    QualityEvent,
    RuleHold,
    check_reference,
    decode_reference_image,
)
from retina.services.core.serving import to_timestamp
from retina.services.worker import metrics
from retina.v1 import worker_pb2

log = logging.getLogger(__name__)

WORK_WIDTH = 160  # the grey picture most checks and the reference view use
BLUR_WIDTH = 320
CAST_WIDTH = 80
NOISE_CROP = (320, 240)  # width, height of the native-resolution crop the noise is measured on
REFERENCE_SAMPLES = 5  # a reference view is the median of this many samples (passers-by vanish)

FROZEN_LEVELS = 3  # grey levels a pixel must change by to count as changed
DARK_LEVEL, BRIGHT_LEVEL = 40, 245
OCCLUSION_GRID = (16, 9)
UNIFORM_STD, TEXTURED_STD = 3.0, 6.0
OCCLUSION_MIN_TEXTURED = 0.25  # below this share of textured cells, blocked cells count against a quarter
OCCLUSION_BASELINE_SECONDS = 300.0
SCENE_GRID = (6, 4)
SCENE_SHIFT = 0.02  # shake tolerated, as a share of the width
SCENE_MATCH = 0.6
SCENE_BUSY_LEVELS = 8.0
SCENE_TEXTURED_STD = 2.0
SCENE_WINDOW_SAMPLES = 10
SCENE_MIN_JUDGED = 0.25
SCORE_DIGITS = 4

_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
# The operator's response to unit-variance white noise has a standard deviation of 6 (the square
# root of the sum of its squared weights); the median of |N(0, s²)| is 0.6745 s.
_IMMERKAER_SCALE = 1.0 / (0.6745 * 6.0)


# ---------------------------------------------------------------------------------------------
# The measures: pure functions of (parts of) one sample
# ---------------------------------------------------------------------------------------------


def resize_to_width(image: np.ndarray, width: int) -> np.ndarray:
    """``image`` scaled to ``width`` pixels (area averaging; never enlarged)."""
    height, current = image.shape[:2]
    if current <= width:
        return image
    return cv2.resize(image, (width, max(1, round(height * width / current))), interpolation=cv2.INTER_AREA)


def blur_score(grey: np.ndarray) -> float:
    """Crete et al. (2007): 0 for a sharp picture, towards 1 the more blurred it is; the larger of
    the vertical and horizontal estimates."""
    picture = grey.astype(np.float32)
    scores = []
    for axis, kernel in ((0, (1, 9)), (1, (9, 1))):
        blurred = cv2.blur(picture, kernel)
        variation = np.abs(np.diff(picture, axis=axis))
        kept = np.maximum(0.0, variation - np.abs(np.diff(blurred, axis=axis)))
        total = float(variation.sum())
        scores.append((total - float(kept.sum())) / total if total > 0 else 1.0)
    return max(scores)


def colour_cast_score(bgr: np.ndarray) -> float:
    """The CIE Lab chroma of the picture's mean colour: 0 for a neutral picture."""
    lab = cv2.cvtColor(bgr, cv2.COLOR_BGR2LAB).reshape(-1, 3).astype(np.float32)
    a, b = lab[:, 1].mean() - 128.0, lab[:, 2].mean() - 128.0
    return float(np.hypot(a, b))


def noise_score(grey: np.ndarray) -> float:
    """Noise or interference strength in grey levels: the larger of the noise sigma (Immerkær's
    operator, median of its response so that edges do not count) and the amplitude of lines that
    alternate from row to row or column to column (median of the second difference of the row and
    column means; a zebra crossing's few edges do not move a median)."""
    picture = grey.astype(np.float32)
    if min(picture.shape) < 8:
        return 0.0
    response = cv2.filter2D(picture, -1, _IMMERKAER)[1:-1, 1:-1]
    sigma = float(np.median(np.abs(response))) * _IMMERKAER_SCALE
    stripes = 0.0
    for profile in (picture.mean(axis=1), picture.mean(axis=0)):
        second = np.abs(profile[:-2] - 2 * profile[1:-1] + profile[2:])
        stripes = max(stripes, float(np.median(second)) / 4)  # alternating ±a gives a second difference of 4a
    return max(sigma, stripes)


def centre_crop(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The centre of ``image``, at most ``width`` x ``height`` (native resolution)."""
    h, w = image.shape[:2]
    top, left = max(0, (h - height) // 2), max(0, (w - width) // 2)
    return image[top : top + height, left : left + width]


def cell_stds(grey: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """The standard deviation of each cell of a ``grid`` (columns, rows) laid over the picture (area
    averages of the values and of their squares, so one pass whatever the grid)."""
    picture = grey.astype(np.float32)
    mean = cv2.resize(picture, grid, interpolation=cv2.INTER_AREA)
    square = cv2.resize(picture * picture, grid, interpolation=cv2.INTER_AREA)
    return np.sqrt(np.maximum(square - mean * mean, 0.0))


def median_picture(pictures: list[np.ndarray]) -> np.ndarray:
    """The pixel-wise median of pictures of one size (what stays put: the scene without passers-by)."""
    return np.median(np.stack(pictures), axis=0).astype(np.uint8)


class SceneMatcher:
    """Whether the camera still looks at its reference view (see the module doc, scene_change)."""

    def __init__(self, reference: np.ndarray):
        self.reference = reference
        self._prepared: np.ndarray | None = None
        self._shape: tuple[int, int] | None = None
        self._found: deque[np.ndarray] = deque(maxlen=SCENE_WINDOW_SAMPLES)
        self._calm_missing: deque[np.ndarray] = deque(maxlen=SCENE_WINDOW_SAMPLES)
        self._previous: np.ndarray | None = None

    def _prepare(self, shape: tuple[int, int]) -> None:
        reference = self.reference
        if reference.shape != shape:  # another stream size of the same camera: compare like with like
            reference = cv2.resize(reference, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
        self._prepared = cv2.GaussianBlur(reference.astype(np.float32), (0, 0), 1.0)
        self._shape = shape
        columns, rows = SCENE_GRID
        ys = np.linspace(0, shape[0], rows + 1).astype(int)
        xs = np.linspace(0, shape[1], columns + 1).astype(int)
        self._tiles = [(ys[r], ys[r + 1], xs[c], xs[c + 1]) for r in range(rows) for c in range(columns)]
        self._textured = np.array(
            [self._prepared[a:b, c:d].std() > SCENE_TEXTURED_STD for a, b, c, d in self._tiles]
        )
        self.reset()

    def reset(self) -> None:
        """Forget the recent samples (after a gap in the picture, or a new reference)."""
        self._found.clear()
        self._calm_missing.clear()
        self._previous = None

    def score(self, grey: np.ndarray) -> float:
        """The share of judged reference tiles not found at their place in the recent samples."""
        if self._shape != grey.shape:
            self._prepare(grey.shape)
        current = cv2.GaussianBlur(grey.astype(np.float32), (0, 0), 1.0)
        margin = max(1, round(SCENE_SHIFT * grey.shape[1]))
        found, calm = [], []
        for top, bottom, left, right in self._tiles:
            template = current[top + margin : bottom - margin, left + margin : right - margin]
            if template.size == 0 or template.std() < SCENE_TEXTURED_STD:
                found.append(False)  # uniform now (covered, or a plain wall of a lorry): no evidence
                calm.append(False)
                continue
            window = self._prepared[top:bottom, left:right]
            found.append(
                float(cv2.matchTemplate(window, template, cv2.TM_CCOEFF_NORMED).max()) >= SCENE_MATCH
            )
            previous = self._previous
            calm.append(
                previous is not None
                and np.abs(current[top:bottom, left:right] - previous[top:bottom, left:right]).mean()
                < SCENE_BUSY_LEVELS
            )
        self._previous = current
        found_now = np.array(found)
        self._found.append(found_now)
        self._calm_missing.append(np.array(calm) & ~found_now)
        in_place = np.logical_or.reduce(list(self._found))
        moved = np.logical_or.reduce(list(self._calm_missing)) & ~in_place & self._textured
        judged = (in_place & self._textured) | moved
        if judged.sum() < SCENE_MIN_JUDGED * max(1, self._textured.sum()):
            return 0.0
        return float(moved.sum() / judged.sum())


# ---------------------------------------------------------------------------------------------
# The reference view, hysteresis, reports
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """A camera's reference view: the grey working picture (160 px wide) it is compared against."""

    image: np.ndarray
    captured_at: float  # epoch seconds (stream time of the sample)
    source: str  # "auto" or "confirmed"

    def to_png(self) -> bytes:
        ok, png = cv2.imencode(".png", self.image)
        if not ok:
            raise ValueError("PNG encoding failed")
        return png.tobytes()

    @classmethod
    def from_png(cls, data: bytes, captured_at: float, source: str) -> Reference:
        """Decode a stored reference; ValueError naming the problem when it is not a small grey PNG."""
        return cls(decode_reference_image(data), captured_at, source)

    @cached_property
    def view(self) -> ReferenceView:
        """The reference as rules see it (:attr:`AnalysedFrame.reference`)."""
        return ReferenceView(self.image, self.captured_at, self.source == "confirmed")


@dataclass
class _Hysteresis:
    """One check's state. A problem starts once the score has reached ``enter`` and stayed above
    ``leave`` for ``enter_seconds`` (a dip between the thresholds does not restart the wait, one to
    ``leave`` does); it ends once the score has reached ``leave`` and stayed below ``enter`` for
    ``leave_seconds``."""

    settings: QualityCheck
    score: float = 0.0
    active: bool = False
    since: float | None = None  # when the problem started
    crossed_at: float | None = None  # when the score crossed towards the other state (a pending change)

    @property
    def alarming(self) -> bool:
        """The problem is active, or about to start (its score reached ``enter`` and the wait runs)."""
        return self.active or self.crossed_at is not None

    def update(self, score: float, now: float) -> bool:
        """Take a new score; True when the problem started or ended."""
        self.score = score
        s = self.settings
        towards, back = (
            (score <= s.leave, score >= s.enter) if self.active else (score >= s.enter, score <= s.leave)
        )
        if back:
            self.crossed_at = None
        elif towards and self.crossed_at is None:
            self.crossed_at = now
        if self.crossed_at is None or now - self.crossed_at < (
            s.leave_seconds if self.active else s.enter_seconds
        ):
            return False
        self.active = not self.active
        self.since = now if self.active else None
        self.crossed_at = None
        return True

    def clear(self) -> bool:
        """End the problem at once (a new reference view); True if it was active."""
        was = self.active
        self.active, self.since, self.crossed_at, self.score = False, None, None, 0.0
        return was


@dataclass(frozen=True)
class CheckReport:
    """One check as of the latest sample."""

    name: str
    score: float
    enter: float
    leave: float
    problem: bool
    since: float | None


@dataclass(frozen=True)
class QualityStatus:
    """What the analysis thread needs: the active problems and whether the rules are held."""

    problems: tuple[str, ...] = ()
    hold: RuleHold = ""
    note: str = ""


@dataclass(frozen=True)
class QualityReport:
    """A camera's video quality: every enabled check, the problems, the rules' hold, the reference."""

    camera_id: str
    at: float
    checks: tuple[CheckReport, ...]
    problems: tuple[str, ...]
    hold: RuleHold
    note: str
    reference_at: float | None
    raised: tuple[str, ...] = ()
    cleared: tuple[str, ...] = ()
    new_reference: Reference | None = None  # set on the report of a view the monitor just took


@dataclass
class _Sample:
    grey: np.ndarray  # WORK_WIDTH wide
    at: float


# ---------------------------------------------------------------------------------------------
# The monitor
# ---------------------------------------------------------------------------------------------


@dataclass
class QualityMonitor:
    """The video-quality monitor of one camera (see the module doc).

    :meth:`observe` runs on the camera's decode thread; :attr:`status` is read by the analysis
    thread and :meth:`capture_reference` / :meth:`report` by the worker's RPCs: state changes happen
    under one lock and ``status`` is replaced whole, never changed in place.
    """

    camera_id: str
    config: QualityConfig
    reference: Reference | None = None
    status: QualityStatus = field(default_factory=QualityStatus)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._checks = {
            name: _Hysteresis(self.config.check(name)) for name in CHECKS if self.config.check(name).enabled
        }
        self._signal = True
        self._next_due: float | None = None
        self._recent: deque[_Sample] = deque(maxlen=REFERENCE_SAMPLES)
        self._previous: np.ndarray | None = None
        self._unchanged_since: float | None = None
        self._baseline: np.ndarray | None = None  # occlusion: each cell's usual texture
        self._clean_since: float | None = None
        self._scene = SceneMatcher(self.reference.image) if self.reference is not None else None
        self._last_at = 0.0
        self._log = {"camera_id": self.camera_id}

    # -- input ---------------------------------------------------------------------------------

    def due(self, timestamp: float) -> bool:
        """Whether a frame at ``timestamp`` (stream time) is the next sample."""
        return self._next_due is None or timestamp >= self._next_due

    def observe(
        self, image: np.ndarray, timestamp: float, decode_errors: int = 0, packets: int = 0
    ) -> QualityReport | None:
        """Diagnose one sampled BGR frame (``decode_errors`` of ``packets`` failed since the
        previous sample); return a report when a problem started or ended, the rules' hold changed
        or a reference view was taken, else None."""
        started = time.perf_counter()
        self._next_due = timestamp + self.config.sample_seconds
        grey, scores = self._measure(image, decode_errors, packets, timestamp)
        with self._lock:
            self._recent.append(_Sample(grey, timestamp))
            report = self._judge(scores, timestamp)
        metrics.QUALITY_SECONDS.observe(time.perf_counter() - started)
        return report

    def set_signal(self, ok: bool, timestamp: float) -> QualityReport | None:
        """The decode thread's view of the source: ``ok`` False while it is offline or stalled."""
        with self._lock:
            if ok == self._signal:
                return None
            self._signal = ok
            self._previous = None  # a gap in the picture: frozen and scene judge afresh
            self._unchanged_since = None
            if self._scene is not None:
                self._scene.reset()
            raised, cleared = ((), (NO_SIGNAL,)) if ok else ((NO_SIGNAL,), ())
            log.log(
                logging.INFO if ok else logging.WARNING,
                f"quality: {'signal back' if ok else 'no signal'}",
                extra={**self._log, "problem": NO_SIGNAL},
            )
            metrics.QUALITY_PROBLEM.labels(self.camera_id, NO_SIGNAL).set(0 if ok else 1)
            self.status = self._status()
            return self._report(timestamp, raised, cleared)

    def capture_reference(self, timestamp: float | None = None, source: str = "confirmed") -> Reference:
        """Take the current view (median of the latest samples) as the reference view; a scene
        change ends at once and the rules it held resume. LookupError before the first sample."""
        with self._lock:
            if not self._recent:
                raise LookupError("no sampled frame yet")
            reference = self._take_reference(timestamp or self._recent[-1].at, source)
            self.status = self._status()
        log.info(
            "quality: reference view taken",
            extra={**self._log, "source": source, "reference_at": reference.captured_at},
        )
        return reference

    def report(self) -> QualityReport:
        """The current state (for heartbeats and status queries)."""
        with self._lock:
            return self._report(self._last_at, (), ())

    def close(self) -> None:
        """The camera left this worker (or its source ended): drop its metric series, so no stale
        problem stays on this worker's /metrics."""
        for name in (*self._checks, NO_SIGNAL):
            for gauge in (metrics.QUALITY_SCORE, metrics.QUALITY_PROBLEM):
                with contextlib.suppress(KeyError):
                    gauge.remove(self.camera_id, name)
        with contextlib.suppress(KeyError):
            metrics.RULES_HELD.remove(self.camera_id)

    # -- measuring (on the decode thread; touches nothing another thread reads) --------------

    def _measure(
        self, image: np.ndarray, decode_errors: int, packets: int, now: float
    ) -> tuple[np.ndarray, dict[str, float]]:
        """The working grey picture of a sample and every enabled check's score (but scene_change,
        judged under the lock against the reference)."""
        wide = resize_to_width(image, BLUR_WIDTH)
        grey_wide = cv2.cvtColor(wide, cv2.COLOR_BGR2GRAY)
        grey = resize_to_width(grey_wide, WORK_WIDTH)
        checks = self._checks
        scores: dict[str, float] = {}
        if "decode_errors" in checks:
            scores["decode_errors"] = decode_errors / packets if packets > 0 else 0.0
        if "frozen" in checks:
            scores["frozen"] = self._frozen_seconds(grey, now)
        if "blur" in checks:
            scores["blur"] = blur_score(grey_wide)
        if "dark" in checks:
            scores["dark"] = float((grey < DARK_LEVEL).mean())
        if "overexposed" in checks:
            scores["overexposed"] = float((grey >= BRIGHT_LEVEL).mean())
        if "colour_cast" in checks:
            scores["colour_cast"] = colour_cast_score(resize_to_width(wide, CAST_WIDTH))
        if "noise" in checks:
            crop = centre_crop(image, *NOISE_CROP)
            scores["noise"] = noise_score(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY))
        if "occluded" in checks:
            scores["occluded"] = self._occluded_share(grey)
        self._previous = grey
        return grey, scores

    def _frozen_seconds(self, grey: np.ndarray, now: float) -> float:
        previous = self._previous
        if previous is None or previous.shape != grey.shape or self._unchanged_since is None:
            self._unchanged_since = now
            return 0.0
        changed = float((np.abs(grey.astype(np.int16) - previous) >= FROZEN_LEVELS).mean())
        if changed >= self.config.frozen.min_changed_share:
            self._unchanged_since = now
        return now - self._unchanged_since

    def _occluded_share(self, grey: np.ndarray) -> float:
        stds = cell_stds(grey, OCCLUSION_GRID)
        if self._baseline is None:
            self._baseline = stds
            return 0.0
        textured = self._baseline >= TEXTURED_STD
        blocked = (stds < UNIFORM_STD) & textured
        share = float(blocked.sum() / max(textured.sum(), OCCLUSION_MIN_TEXTURED * textured.size))
        state = self._checks["occluded"]
        if not (state.active or share >= state.settings.enter):  # learn only while nothing covers it
            rate = min(1.0, self.config.sample_seconds / OCCLUSION_BASELINE_SECONDS)
            self._baseline += rate * (stds - self._baseline)
        return share

    # -- judging (under the lock) ---------------------------------------------------------------

    def _judge(self, scores: dict[str, float], now: float) -> QualityReport | None:
        self._last_at = now
        raised: list[str] = []
        cleared: list[str] = []
        for name, score in scores.items():
            self._update(name, score, now, raised, cleared)
        self._judge_scene(now, raised, cleared)
        new_reference = None
        if self._clean(now) and self.reference is None:
            new_reference = self._take_reference(now, "auto")
            log.info("quality: first clean view taken as the reference view", extra=self._log)
        before = self.status
        self.status = self._status()
        for name, state in self._checks.items():
            metrics.QUALITY_SCORE.labels(self.camera_id, name).set(state.score)
        if not (raised or cleared or new_reference is not None or self.status.hold != before.hold):
            return None
        if self.status.hold != before.hold:
            self._log_hold(before.hold)
        return self._report(now, tuple(raised), tuple(cleared), new_reference)

    def _update(self, name: str, score: float, now: float, raised: list[str], cleared: list[str]) -> None:
        state = self._checks[name]
        if not state.update(round(score, SCORE_DIGITS), now):
            return
        (raised if state.active else cleared).append(name)
        metrics.QUALITY_PROBLEM.labels(self.camera_id, name).set(1 if state.active else 0)
        s = state.settings
        log.log(
            logging.WARNING if state.active else logging.INFO,
            f"quality problem {'started' if state.active else 'ended'}: {name}",
            extra={**self._log, "problem": name, "score": state.score, "enter": s.enter, "leave": s.leave},
        )

    def _judge_scene(self, now: float, raised: list[str], cleared: list[str]) -> None:
        """The scene-change check, unless the picture cannot be judged now (covered, frozen, dark)."""
        if "scene_change" not in self._checks or self._scene is None:
            return
        blinding = ("occluded", "frozen", "dark", "overexposed")
        if any(self._checks[n].alarming for n in blinding if n in self._checks) or self._unchanged():
            self._scene.reset()
            return
        self._update("scene_change", self._scene.score(self._recent[-1].grey), now, raised, cleared)

    def _unchanged(self) -> bool:
        """Whether the latest sample showed no change from the one before (nothing new to judge)."""
        return "frozen" in self._checks and self._checks["frozen"].score > 0

    def _clean(self, now: float) -> bool:
        """Whether the picture has had no problem, nor any score at ``enter``, for the settle time."""
        if not self._signal or any(state.alarming for state in self._checks.values()):
            self._clean_since = None
            return False
        if self._clean_since is None:
            self._clean_since = now
        return now - self._clean_since >= self.config.reference_settle_seconds

    def _take_reference(self, at: float, source: str) -> Reference:
        reference = Reference(median_picture([sample.grey for sample in self._recent]), at, source)
        self.reference = reference
        self._scene = SceneMatcher(reference.image)
        scene = self._checks.get("scene_change")
        if scene is not None and scene.clear():
            metrics.QUALITY_PROBLEM.labels(self.camera_id, "scene_change").set(0)
            log.info("quality problem ended: scene_change (new reference view)", extra=self._log)
        return reference

    def _status(self) -> QualityStatus:
        problems = self._problems()
        scene = self._checks.get("scene_change")
        holding = [n for n in self.config.pause_rules_on if n in self._checks and self._checks[n].alarming]
        if scene is not None and scene.alarming:
            return QualityStatus(problems, "suspended", RULE_HOLD_NOTES["scene_change"])
        if holding:
            return QualityStatus(problems, "paused", RULE_HOLD_NOTES[holding[0]])
        return QualityStatus(problems, "", "")

    def _problems(self) -> tuple[str, ...]:
        active = [name for name, state in self._checks.items() if state.active]
        return ((NO_SIGNAL,) if not self._signal else ()) + tuple(active)

    def _log_hold(self, before: RuleHold) -> None:
        status = self.status
        metrics.RULES_HELD.labels(self.camera_id).set(1 if status.hold else 0)
        if status.hold == "suspended":
            log.warning(
                "OPS ALERT: camera moved, its zone rules are suspended until ops confirm the new view "
                f"(retina cameras reference {self.camera_id}) or re-draw its zones",
                extra={**self._log, "rules": status.hold, "note": status.note},
            )
        elif status.hold == "paused":
            log.warning(
                "quality: rules paused", extra={**self._log, "rules": status.hold, "note": status.note}
            )
        else:
            log.info("quality: rules resumed", extra={**self._log, "rules_were": before})

    def _report(
        self,
        at: float,
        raised: tuple[str, ...],
        cleared: tuple[str, ...],
        new_reference: Reference | None = None,
    ) -> QualityReport:
        checks = tuple(
            CheckReport(
                name, state.score, state.settings.enter, state.settings.leave, state.active, state.since
            )
            for name, state in self._checks.items()
        )
        status = self._status()
        return QualityReport(
            camera_id=self.camera_id,
            at=at,
            checks=checks,
            problems=status.problems,
            hold=status.hold,
            note=status.note,
            reference_at=self.reference.captured_at if self.reference is not None else None,
            raised=raised,
            cleared=cleared,
            new_reference=new_reference,
        )


# ---------------------------------------------------------------------------------------------
# On the wire: the heartbeat's CameraQuality, the NATS event, the registry's reference view
# ---------------------------------------------------------------------------------------------


def _stamp(epoch: float | None) -> Timestamp | None:
    return to_timestamp(epoch) if epoch else None


def report_to_proto(report: QualityReport) -> worker_pb2.CameraQuality:
    """The ``retina.v1.CameraQuality`` of a report (what heartbeats carry to the registry)."""
    return worker_pb2.CameraQuality(
        checks=[
            worker_pb2.QualityCheck(
                name=c.name,
                score=c.score,
                enter=c.enter,
                leave=c.leave,
                problem=c.problem,
                since=_stamp(c.since),
            )
            for c in report.checks
        ],
        problems=list(report.problems),
        rules=report.hold,
        note=report.note,
        reference_at=_stamp(report.reference_at),
        sampled_at=_stamp(report.at),
    )


def report_to_event(report: QualityReport, worker_id: str) -> QualityEvent:
    """The ``retina.camera-quality/1`` event of a report."""

    def utc(epoch: float | None) -> datetime | None:
        return datetime.fromtimestamp(epoch, UTC) if epoch else None

    return QualityEvent(
        camera_id=report.camera_id,
        worker_id=worker_id,
        at=utc(report.at) or datetime.now(UTC),
        problems=list(report.problems),
        raised=list(report.raised),
        cleared=list(report.cleared),
        rules=report.hold,
        note=report.note,
        reference_at=utc(report.reference_at),
        checks={
            c.name: CheckState(
                score=c.score, enter=c.enter, leave=c.leave, problem=c.problem, since=utc(c.since)
            )
            for c in report.checks
        },
    )


def reference_to_proto(camera_id: str, reference: Reference, worker_id: str) -> worker_pb2.QualityReference:
    """The ``retina.v1.QualityReference`` of a reference view."""
    return worker_pb2.QualityReference(
        camera_id=camera_id,
        image=reference.to_png(),
        captured_at=to_timestamp(reference.captured_at),
        source=reference.source,
        worker_id=worker_id,
    )


def reference_from_proto(message: worker_pb2.QualityReference, field: str = "reference") -> Reference:
    """The reference view of a message; InvalidArgument naming ``field`` and the bad part."""
    image, captured_at = check_reference(message, field)
    return Reference(image, captured_at, message.source)
