"""Exposed trash (暴露垃圾): a new static object left in a no-dumping zone for ``dwell_seconds``.

No trash detector ships, so the default method is a background model on the camera's own pixels,
run on frames scaled to ``work_width`` (640 px: a 25 x 15 px bag at 1280 x 720 is 12 x 7 px there):
a slow long-term background (``background_seconds`` of memory) against a fast short-term one. A
region that differs from the long-term background, is stable in the short term (it is not moving),
and is not explained by a tracked person or vehicle is a candidate; a candidate that stays
``dwell_seconds`` is an incident, and ends when the region matches the background again (removed).
The long-term background is frozen under candidates (and never learns people or vehicles) so a
pile is not absorbed while it is there; a candidate must be seen in at least ``min_presence_ratio``
of the frames since it appeared, which rejects flicker (on-screen clocks, swaying leaves, noise).
A pixel differs only where it differs from every background pixel within :data:`SHIFT_TOLERANCE`
px, so an edge that moves a little (a door ajar, a shaking camera) is not an object. An incident's
``details.found_against`` says whether the object was seen arriving (``background``) or was there
before the camera started (``reference``).

Start and reconnect: there is no blind warm-up. The background is the pixel-wise median of
:data:`INIT_SAMPLES` frames spread over the first ``init_seconds``, each with the boxes of people,
vehicles and non-motor vehicles masked out (pixels covered in every one are learnt the first time
they are seen uncovered), so an object put down after that alerts within its dwell. An object that
was already there is part of that median; it is found only against the camera's reference view
(:attr:`AnalysedFrame.reference`: the clean scene ops confirmed with ``retina cameras reference``,
kept in the camera registry): the regions where the first background differs from the reference are
put back to the reference, so the object there is a candidate from the start (compared at the
reference's own 160 px, which still resolves a 25 x 15 px bag at 720p). Without a confirmed
reference such an object cannot be told from the scene. A reconnect keeps the background: an
object left during the gap differs from it at once.

Lighting and shadows: short-term frames are gain-matched to the background before comparing; when
more than ``lighting_change_ratio`` of a zone changes at once (clouds, street lights) the background
is re-based (and compared with the reference again) instead of raising alerts; a region that is the
background darkened or brightened by a factor of at least ``shadow_min_ratio`` with the background's
texture still in it is a shadow (or a shadow gone), not an object, and the ground next to a person or
vehicle is theirs for ``explain_memory_seconds``. An operator with a trash detector lists its classes
in ``trash_classes``: tracked objects of those classes count as candidates too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from pydantic import Field, model_validator

from retina.algorithms.sdk import (
    AlgorithmManifest,
    AnalysedFrame,
    DwellParams,
    DwellRule,
    Observation,
    ReferenceView,
    box_iou,
)

log = logging.getLogger(__name__)

INIT_SAMPLES = 5  # the first background is the median of this many masked frames
SHADOW_MIN_TEXTURE = 3.0  # grey-level spread the background needs for the shadow test to judge
SHADOW_TEXTURE_MATCH = 0.6  # correlation with the background that means "the ground, darker"
SHIFT_TOLERANCE = 2  # px of the work picture an edge may move without being a change
MIN_WORK_PIXELS = 20  # objects smaller than this in the work picture are lost in noise and morphology
CLOSE_KERNEL = 9  # px of the work picture: parts of one object closer than this are one blob

Box = tuple[float, float, float, float]


class ExposedTrashParams(DwellParams):
    @model_validator(mode="before")
    @classmethod
    def _removed_warmup(cls, data: Any) -> Any:
        if isinstance(data, dict) and "warmup_seconds" in data:
            raise ValueError(
                "warmup_seconds was removed in exposed_trash 1.1.0: the rule learns the scene from its"
                " first frames (init_seconds) with people and vehicles masked out and no longer waits;"
                " delete the line"
            )
        return data

    dwell_seconds: float = Field(default=300.0, gt=0, description="How long an object stays before an alert")
    grace_seconds: float = Field(
        default=20.0, ge=0, description="Occlusions shorter than this keep the object"
    )
    min_area_ratio: float = Field(
        default=0.0002,
        gt=0,
        lt=1,
        description="Smallest object, fraction of the frame (0.0002: 184 px at 1280x720; a 25x15 bag is 375)",
    )
    max_area_ratio: float = Field(default=0.08, gt=0, le=1, description="Largest object, fraction of frame")
    work_width: int = Field(
        default=640,
        ge=160,
        le=1920,
        description="Width the background model runs at (never more than the frame's); wider finds smaller",
    )
    background_seconds: float = Field(default=600.0, gt=0, description="Memory of the long-term background")
    short_term_seconds: float = Field(default=4.0, gt=0, description="Memory of the short-term background")
    difference_threshold: float = Field(
        default=28.0, gt=0, le=255, description="Grey-level change that counts"
    )
    lighting_change_ratio: float = Field(
        default=0.35,
        gt=0,
        le=1,
        description="Share of a zone changing at once that means lighting, not trash",
    )
    init_seconds: float = Field(
        default=4.0,
        ge=0,
        description="The first background is the median of frames over this time, people and vehicles masked",
    )
    min_presence_ratio: float = Field(
        default=0.7, gt=0, le=1, description="Share of frames a candidate must be seen in (rejects flicker)"
    )
    explain_memory_seconds: float = Field(
        default=3.0, ge=0, description="Where a person or vehicle was this recently, changes are theirs"
    )
    shadow_min_ratio: float = Field(
        default=0.45,
        gt=0,
        lt=1,
        description="A change darkening the textured ground to no less than this share of it is a shadow",
    )
    trash_classes: list[str] = Field(
        default_factory=list, description="Classes of a dedicated trash detector"
    )


@dataclass
class _Candidate:
    key: int
    bbox: Box  # pixels of the original frame
    first_seen: float
    last_seen: float
    frames: int = 1  # frames analysed since it first appeared
    hits: int = 1  # of which it was seen in
    against: str = "background"  # or "reference": it was there before the camera started


class ExposedTrash(DwellRule):
    manifest = AlgorithmManifest(
        name="exposed_trash",
        version="1.1.0",
        params_model=ExposedTrashParams,
        families=frozenset({"person", "vehicle", "non_motor"}),
        description="A new static object stays in a no-dumping zone longer than dwell_seconds",
    )
    params: ExposedTrashParams

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._long: np.ndarray | None = None
        self._short: np.ndarray | None = None
        self._unknown: np.ndarray | None = None  # never seen uncovered yet: learnt when first seen
        self._init: list[tuple[np.ndarray, np.ndarray]] = []  # (grey, covered) of the first frames
        # (low, high) grey levels each of the first frames allows per pixel (see _forget_ghosts)
        self._seen_at_start: list[tuple[np.ndarray, np.ndarray]] = []
        self._seen_until = 0.0
        self._init_started: float | None = None
        self._zone_masks: dict[str, np.ndarray] = {}
        self._in_zones: np.ndarray | None = None
        self._frame_size = (1, 1)  # width, height of the latest frame
        self._last_t: float | None = None
        self._recent_objects: list[tuple[float, Box]] = []  # (seen at, bbox)
        self._candidates: list[_Candidate] = []
        self._next_key = 0
        self._reference_at: float | None = None  # captured_at of the reference compared with
        self._from_reference: list[Box] = []  # regions that differed from it (frame pixels)
        self._log = {"camera_id": self.camera.camera_id, "algorithm": self.manifest.name}

    # -- the work picture --------------------------------------------------------------------

    def _prepare(self, frame: AnalysedFrame) -> tuple[np.ndarray, float]:
        self._frame_size = (frame.width, frame.height)
        width = min(self.params.work_width, frame.width)
        scale = width / frame.width
        size = (width, max(1, round(frame.height * scale)))
        image = frame.image if scale == 1 else cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA)
        grey = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (5, 5), 0).astype(np.float32)
        if self._in_zones is None:
            for zone in self.zones:
                mask = np.zeros(grey.shape, np.uint8)
                points = np.array([(x * size[0], y * size[1]) for x, y in zone.polygon], np.int32)
                cv2.fillPoly(mask, [points], 1)
                self._zone_masks[zone.name] = mask.astype(bool)
            self._in_zones = np.any(list(self._zone_masks.values()), axis=0)
            smallest = self.params.min_area_ratio * size[0] * size[1]
            if smallest < MIN_WORK_PIXELS:
                log.warning(
                    "exposed_trash: min_area_ratio is below what the work picture resolves; raise work_width",
                    extra={**self._log, "smallest_work_pixels": round(smallest, 1), "work_width": size[0]},
                )
        return grey, scale

    def _explained_mask(self, frame: AnalysedFrame, shape: tuple[int, ...], scale: float) -> np.ndarray:
        """Pixels a person or vehicle (or its shadow on the ground beside it) covers now or covered
        within ``explain_memory_seconds``."""
        now = frame.timestamp
        memory = self.params.explain_memory_seconds
        self._recent_objects = [(t, box) for t, box in self._recent_objects if now - t <= memory]
        moving = self.manifest.families  # people and vehicles explain a change; they are not trash
        self._recent_objects += [(now, o.bbox) for o in frame.objects if o.family in moving]
        explained = np.zeros(shape, np.uint8)
        for _, box in self._recent_objects:
            x1, y1, x2, y2 = (round(v * scale) for v in box)
            h = y2 - y1
            pad = max(2, round(0.1 * h))
            cv2.rectangle(explained, (x1 - pad, y1 - pad), (x2 + pad, y2 + pad), 1, -1)
            side = round(0.25 * h)  # a low sun casts the shadow beside the feet, not inside the box
            cv2.rectangle(explained, (x1 - side, y2 - round(0.15 * h)), (x2 + side, y2 + pad), 1, -1)
        return explained

    # -- the background model ------------------------------------------------------------------

    def _static_foreground(self, frame: AnalysedFrame) -> tuple[np.ndarray, float]:
        """Pixels of the work picture that hold a new, unmoving, unexplained thing."""
        grey, scale = self._prepare(frame)
        now = frame.timestamp
        dt = 0.5 if self._last_t is None else max(now - self._last_t, 1e-3)
        self._last_t = now
        explained = self._explained_mask(frame, grey.shape, scale)
        nothing = np.zeros(grey.shape, bool)
        if self._long is None:
            self._initialise(grey, explained, now, frame.reference)
            return nothing, scale
        assert self._short is not None and self._unknown is not None and self._in_zones is not None
        if self._unknown.any():  # first uncovered look at what people hid while the background began
            learn = self._unknown & (explained == 0)
            self._long[learn] = self._short[learn] = grey[learn]
            self._unknown &= ~learn
        if frame.reference is not None and self._reference_changed(frame.reference):
            self._compare_with_reference(frame.reference, explained)
        cv2.accumulateWeighted(grey, self._short, min(1.0, dt / self.params.short_term_seconds))

        in_zones = self._in_zones
        gain = self._gain(self._short)
        differs = self._differs(self._short * gain, self._long)
        settled = np.abs(grey - self._short) < self.params.difference_threshold
        static = differs & settled & in_zones & (explained == 0) & ~self._unknown
        if static.any() and self._seen_at_start:
            self._forget_ghosts(static, gain, now)

        for name, mask in self._zone_masks.items():
            if static[mask].mean() > self.params.lighting_change_ratio:  # lighting, not an object
                self._long[mask] = self._short[mask]
                static[mask] = False
                self._candidates = [c for c in self._candidates if not self._in_zone(c, name, scale)]
                log.info("exposed_trash: lighting change, re-based", extra={**self._log, "zone": name})
                if frame.reference is not None and frame.reference.confirmed:
                    self._compare_with_reference(frame.reference, explained)

        # The background never learns people, vehicles or candidates; otherwise a slow memory.
        frozen = static.astype(np.uint8) | explained
        for candidate in self._candidates:
            x1, y1, x2, y2 = (round(v * scale) for v in candidate.bbox)
            frozen[max(y1, 0) : y2 + 1, max(x1, 0) : x2 + 1] = 1
        alpha_long = min(1.0, dt / self.params.background_seconds)
        cv2.accumulateWeighted(grey, self._long, alpha_long, mask=(frozen == 0).astype(np.uint8))
        return static, scale

    def _initialise(
        self, grey: np.ndarray, explained: np.ndarray, now: float, reference: ReferenceView | None
    ) -> None:
        """Collect the first frames; once there are enough, the background is their masked median."""
        if self._init_started is None:
            self._init_started = now
        spacing = self.params.init_seconds / (INIT_SAMPLES - 1)
        due = self._init_started + spacing * len(self._init)
        if now + 1e-6 >= due:
            self._init.append((grey, explained.astype(bool)))
        if len(self._init) < INIT_SAMPLES:
            return
        stack = np.stack([g for g, _ in self._init])
        covered = np.stack([c for _, c in self._init])
        always = covered.all(axis=0)
        median = np.median(np.where(covered & ~always, np.nan, stack), axis=0)
        nan = np.isnan(median)
        if nan.any():  # covered in some frames: the median of the uncovered ones
            median[nan] = np.nanmedian(np.where(covered, np.nan, stack)[:, nan], axis=0)
        self._long, self._short = median.astype(np.float32), median.astype(np.float32)
        self._unknown = always
        samples = self._init
        self._seen_at_start = [self._allowed(np.where(c, np.nan, g).astype(np.float32)) for g, c in samples]
        self._seen_until = now + self.params.background_seconds
        self._init = []
        log.info(
            "exposed_trash: background initialised",
            extra={**self._log, "covered_share": round(float(always.mean()), 4)},
        )
        if reference is not None and self._reference_changed(reference):
            self._compare_with_reference(reference, np.zeros_like(explained))

    def _forget_ghosts(self, static: np.ndarray, gain: float, now: float) -> None:
        """Learn, and drop from ``static``, what the camera already showed in one of its first frames:
        where someone the detector missed stood while the background began, the median holds them,
        and the ground they uncover later is a "ghost", not a new object. A bag dropped later was
        never there in those frames, so it stays. Kept for ``background_seconds``."""
        if now > self._seen_until:
            self._seen_at_start = []
            return
        assert self._long is not None and self._short is not None
        shown = np.zeros(static.shape, bool)
        current = self._short * gain
        for low, high in self._seen_at_start:
            shown |= (current >= low) & (current <= high)
        ghost = static & shown
        if ghost.any():
            self._long[ghost] = self._short[ghost]
            static &= ~ghost

    def _differs(self, current: np.ndarray, background: np.ndarray) -> np.ndarray:
        """Pixels of ``current`` darker or brighter by ``difference_threshold`` than the background
        anywhere within :data:`SHIFT_TOLERANCE` px: an edge shifted a little (a door or branch
        swaying, the camera shaking) is not a change, an object on the ground is."""
        low, high = self._allowed(background)
        return (current < low) | (current > high)

    def _allowed(self, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The (lowest, highest) grey level per pixel that is no change from ``background`` (see
        :meth:`_differs`); a NaN pixel of ``background`` (not seen) allows nothing and is ignored
        by its neighbours."""
        kernel = np.ones((2 * SHIFT_TOLERANCE + 1, 2 * SHIFT_TOLERANCE + 1), np.uint8)
        threshold = self.params.difference_threshold
        unseen = np.isnan(background)
        if not unseen.any():
            return cv2.erode(background, kernel) - threshold, cv2.dilate(background, kernel) + threshold
        low = cv2.erode(np.where(unseen, np.inf, background).astype(np.float32), kernel) - threshold
        high = cv2.dilate(np.where(unseen, -np.inf, background).astype(np.float32), kernel) + threshold
        low[unseen], high[unseen] = np.inf, -np.inf
        return low, high

    def _gain(self, picture: np.ndarray) -> float:
        """The factor matching ``picture``'s brightness in the zones to the long-term background's."""
        assert self._long is not None and self._in_zones is not None
        in_zones = self._in_zones
        return float(self._long[in_zones].mean() / max(picture[in_zones].mean(), 1.0))

    def _reference_changed(self, reference: ReferenceView | None) -> bool:
        """Whether a confirmed reference view is here that the background was not compared with."""
        return reference is not None and reference.confirmed and reference.captured_at != self._reference_at

    def _compare_with_reference(self, reference: ReferenceView, explained: np.ndarray) -> None:
        """Put the regions where the background differs from the clean reference back to the
        reference: an object that was there before the camera started becomes a candidate.

        The comparison runs at the coarser of the work picture and the reference (the stored view is
        160 px wide: a 25 x 15 px bag at 1280 x 720 still covers two whole pixels of it); changes
        larger than ``max_area_ratio`` (a re-arranged scene) or that look like shadows are left alone."""
        assert self._long is not None and self._in_zones is not None and self._unknown is not None
        self._reference_at = reference.captured_at
        height, width = self._long.shape
        image = reference.image
        if abs(image.shape[1] / image.shape[0] - width / height) > 0.02 * width / height:
            log.warning(
                "exposed_trash: the reference view has another shape than the picture; not used until ops"
                " take a new one (retina cameras reference)",
                extra={**self._log, "reference_size": f"{image.shape[1]}x{image.shape[0]}"},
            )
            return
        if image.shape[1] < width:  # as stored (160 px wide): compare both at its size
            stored = (image.shape[1], image.shape[0])
            background = cv2.resize(self._long, stored, interpolation=cv2.INTER_AREA)
            background = cv2.resize(background, (width, height), interpolation=cv2.INTER_LINEAR)
            ref = cv2.resize(image.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
        else:
            ref = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
            ref = cv2.GaussianBlur(ref, (5, 5), 0).astype(np.float32)
            background = self._long
        ref *= self._gain(ref)
        differs = self._differs(background, ref) & self._in_zones
        differs &= (explained == 0) & ~self._unknown
        self._long[self._unknown] = ref[self._unknown]  # hidden at start: the clean scene is known
        self._unknown[:] = False
        self._from_reference = []
        scale = width / self._frame_size[0]
        for box, _ in self._blobs(differs, background, ref, scale):
            x1, y1, x2, y2 = (round(v * scale) for v in box)
            region = (slice(max(y1 - 2, 0), y2 + 3), slice(max(x1 - 2, 0), x2 + 3))
            self._long[region] = ref[region]
            for low, high in self._seen_at_start:  # there from the start: not a ghost to forget
                low[region], high[region] = np.inf, -np.inf
            self._from_reference.append(box)
        if self._from_reference:
            log.info(
                "exposed_trash: objects not in the reference view",
                extra={**self._log, "objects": len(self._from_reference)},
            )

    # -- blobs ---------------------------------------------------------------------------------

    def _blobs(
        self, static: np.ndarray, current: np.ndarray, background: np.ndarray, scale: float
    ) -> list[tuple[Box, float]]:
        """Object-sized groups of changed pixels that are not shadows: (box in frame pixels, the
        share of the box they fill)."""
        mask = cv2.morphologyEx(static.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        # Close gaps of a few pixels so one object with parts of different colours is one blob.
        kernel = np.ones((CLOSE_KERNEL, CLOSE_KERNEL), np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
        parts: list[tuple[Box, float]] = []
        for index, (x, y, w, h, area) in enumerate(stats[1:count].tolist(), start=1):
            pixels = (labels == index) & static
            if not self._shadow(current[pixels], background[pixels]):
                parts.append(((x, y, x + w, y + h), float(area)))
        frame_area = self._frame_size[0] * self._frame_size[1]
        smallest, largest = self.params.min_area_ratio * frame_area, self.params.max_area_ratio * frame_area
        blobs = []
        for (x1, y1, x2, y2), area in _group_nearby(parts):
            if smallest <= area / (scale * scale) <= largest:
                fill = min(1.0, area / max((x2 - x1) * (y2 - y1), 1.0))
                blobs.append(((x1 / scale, y1 / scale, x2 / scale, y2 / scale), fill))
        return blobs

    def _shadow(self, current: np.ndarray, background: np.ndarray) -> bool:
        """Whether changed pixels are the background darkened (or brightened) with its texture kept."""
        if current.size < 4 or background.std() < SHADOW_MIN_TEXTURE:
            return False  # a flat background: a shadow cannot be told from a flat object
        ratio = float(np.median(current / np.maximum(background, 1.0)))
        ratio = ratio if ratio <= 1 else 1 / ratio
        if ratio < self.params.shadow_min_ratio:
            return False
        return float(np.corrcoef(current, background)[0, 1]) >= SHADOW_TEXTURE_MATCH

    def _in_zone(self, candidate: _Candidate, zone_name: str, scale: float) -> bool:
        x = (candidate.bbox[0] + candidate.bbox[2]) / 2 * scale
        y = candidate.bbox[3] * scale
        mask = self._zone_masks[zone_name]
        return bool(mask[min(int(y), mask.shape[0] - 1), min(int(x), mask.shape[1] - 1)])

    # -- DwellRule ----------------------------------------------------------------------------

    def observe(self, frame: AnalysedFrame) -> dict[Any, Observation]:
        now = frame.timestamp
        static, scale = self._static_foreground(frame)
        found: list[tuple[Box, float]] = []
        if static.any():
            assert self._short is not None and self._long is not None
            found += self._blobs(static, self._short * self._gain(self._short), self._long, scale)
        for obj in frame.objects:
            if obj.class_name in self.params.trash_classes and self.relevant(frame, obj):
                found.append((obj.bbox, obj.confidence))

        for candidate in self._candidates:
            candidate.frames += 1
        frame_area = frame.width * frame.height
        seen: dict[Any, Observation] = {}
        for box, confidence in found:
            zone = self.zone_of(frame, box)
            if zone is None:
                continue
            candidate = self._match(box, now)
            if candidate.hits < self.params.min_presence_ratio * candidate.frames:
                continue  # flickers: not a standing object
            seen[candidate.key] = Observation(
                zone=zone,
                bbox=box,
                confidence=round(confidence, 3),
                since=candidate.first_seen,
                track_id=candidate.key,
                details={
                    "area_ratio": round((box[2] - box[0]) * (box[3] - box[1]) / frame_area, 5),
                    "found_against": candidate.against,
                },
            )
        self._candidates = [c for c in self._candidates if now - c.last_seen <= self.params.grace_seconds]
        return seen

    def _match(self, box: Box, now: float) -> _Candidate:
        """The candidate this blob belongs to (overlap, or a part of it seen alone), else a new one."""
        best = max(self._candidates, key=lambda c: _overlap(c.bbox, box), default=None)
        if best is not None and _overlap(best.bbox, box) >= 0.5:
            if box_iou(best.bbox, box) >= 0.3:  # a fragment keeps the candidate's fuller box
                best.bbox = box
            if best.last_seen < now:
                best.hits += 1
            best.last_seen = now
            return best
        self._next_key += 1
        candidate = _Candidate(self._next_key, box, now, now)
        if any(_overlap(region, box) >= 0.5 for region in self._from_reference):
            candidate.against = "reference"
        self._candidates.append(candidate)
        return candidate

    def end_reason(self, key: Any) -> str:
        return "removed"


def _group_nearby(parts: list[tuple[Box, float]]) -> list[tuple[Box, float]]:
    """Merge blobs closer than half the taller one's height: the parts of one object (or one pile)."""
    groups = list(parts)
    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                (a, area_a), (b, area_b) = groups[i], groups[j]
                gap = 0.5 * max(a[3] - a[1], b[3] - b[1])
                if a[0] - gap <= b[2] and b[0] - gap <= a[2] and a[1] - gap <= b[3] and b[1] - gap <= a[3]:
                    box = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    groups[i] = (box, area_a + area_b)
                    del groups[j]
                    merged = True
                    break
            if merged:
                break
    return groups


def _overlap(a: Box, b: Box) -> float:
    """Intersection over the smaller box's area: 1 when one box holds the other."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / smaller if smaller > 0 else 0.0
