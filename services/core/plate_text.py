"""Plate text: what a track's plate is (voted over several reads), and how plates are searched.

Shared by the worker (voting, the ``plate`` of feature records and incidents) and the search
service (indexing and matching). Nothing here loads a model.

- **Voting**: a track's plate is read a few times (on its best crops); :func:`vote` keeps the
  length most of the confidence agrees on, then takes each position's character by confidence-
  weighted vote, and the colour likewise — one misread character in one read does not survive.
- **Searching**: plates are stored with a *canonical* form in which the reader's usual confusions
  are one character (0/D/Q/O, 8/B, 1/I, 5/S, 2/Z); a query with ``*`` (any run) and ``?`` (one
  character) becomes a SQLite GLOB pattern over it. Exact matches are ranked first.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel, Field, FiniteFloat

# Characters read as one another; each group maps to its first member in the canonical form.
CONFUSIONS = ("0DQO", "8B", "1I", "5S", "2Z")
_CANONICAL = {char: group[0] for group in CONFUSIONS for char in group}
PROVINCES = "京沪津渝冀晋蒙辽吉黑苏浙皖闽赣鲁豫鄂湘粤桂琼川贵云藏陕甘青宁新"
SPECIALS = "学警港澳挂使领民航危险品"
PLATE_CHARACTERS = frozenset(PROVINCES + SPECIALS + "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
MIN_PLATE_LENGTH, MAX_PLATE_LENGTH = 5, 12
PLATE_COLOURS = ("black", "blue", "green", "white", "yellow")
_IGNORED = re.compile(r"[\s·.\-]")  # what people type between a plate's characters


class PlateQueryError(ValueError):
    """A plate query that cannot be searched; the message says why (maps to INVALID_ARGUMENT)."""


class PlateFacts(BaseModel):
    """A track's plate: the voted text and colour, how sure (0-1), and how many reads voted."""

    text: str = Field(min_length=1, max_length=MAX_PLATE_LENGTH, description="e.g. 浙B2V9L7")
    colour: str = Field(
        default="", max_length=16, description="blue, green, yellow, white, black ('' unknown)"
    )
    confidence: FiniteFloat = Field(ge=0, le=1)
    reads: int = Field(ge=1, le=10_000, description="plate reads that voted")

    @property
    def canonical(self) -> str:
        return canonical(self.text)


@dataclass(frozen=True)
class PlateRead:
    """One reading of a plate on one crop."""

    text: str
    colour: str
    confidence: float


def plausible(text: str) -> bool:
    """Whether a reading can be a plate at all (its length and characters); others never vote."""
    return MIN_PLATE_LENGTH <= len(text) <= MAX_PLATE_LENGTH and all(c in PLATE_CHARACTERS for c in text)


def normalise(text: str) -> str:
    """Upper case without spaces, dots or dashes (``浙b·2v9l7`` → ``浙B2V9L7``)."""
    return _IGNORED.sub("", text).upper()


def canonical(text: str) -> str:
    """The plate with every confusable character replaced by its group's representative."""
    return "".join(_CANONICAL.get(char, char) for char in normalise(text))


def vote(reads: Iterable[PlateRead]) -> PlateFacts | None:
    """The plate the reads agree on (see module doc); None without any non-empty read.

    Confidence: the winning length's share of the total confidence × the mean share of each
    position's winning character × the mean confidence of the reads of that length.
    """
    reads = [r for r in reads if r.text]
    if not reads:
        return None
    by_length: dict[int, list[PlateRead]] = defaultdict(list)
    for read in reads:
        by_length[len(read.text)].append(read)
    total = sum(max(r.confidence, 1e-6) for r in reads)
    length, group = max(by_length.items(), key=lambda item: (sum(r.confidence for r in item[1]), item[0]))
    weight = sum(max(r.confidence, 1e-6) for r in group)
    text, shares = [], []
    for position in range(length):
        votes: dict[str, float] = defaultdict(float)
        for read in group:
            votes[read.text[position]] += max(read.confidence, 1e-6)
        char, best = max(votes.items(), key=lambda item: item[1])
        text.append(char)
        shares.append(best / weight)
    colours: dict[str, float] = defaultdict(float)
    for read in reads:
        colours[read.colour] += max(read.confidence, 1e-6)
    colour = max(colours.items(), key=lambda item: item[1])[0]
    mean_confidence = weight / len(group)
    confidence = (weight / total) * (sum(shares) / length) * mean_confidence
    return PlateFacts(
        text="".join(text), colour=colour, confidence=round(min(1.0, confidence), 4), reads=len(reads)
    )


@dataclass(frozen=True)
class PlateQuery:
    """A checked plate query: ``exact`` matches literally (after :func:`normalise`), ``tolerant``
    matches the canonical form; both SQLite GLOB patterns."""

    text: str
    exact: str
    tolerant: str
    wildcard: bool


def plate_query(text: str, field: str = "plate") -> PlateQuery:
    """Check a plate query (plate characters, ``*`` and ``?``; at least one plate character);
    :class:`PlateQueryError` naming ``field`` otherwise."""
    query = normalise(text)
    if not query:
        raise PlateQueryError(f"{field}: give a plate, e.g. 浙B2V9L7, or part of one with * and ?, e.g. 浙B*")
    if len(query) > 2 * MAX_PLATE_LENGTH:
        raise PlateQueryError(f"{field}: at most {2 * MAX_PLATE_LENGTH} characters (got {len(query)})")
    unknown = sorted({char for char in query if char not in PLATE_CHARACTERS and char not in "*?"})
    if unknown:
        raise PlateQueryError(
            f"{field}: {''.join(unknown)[:8]!r} cannot be on a plate (use the plate's letters, digits and"
            " province character; * for any run, ? for one character)"
        )
    if all(char in "*?" for char in query):
        raise PlateQueryError(f"{field}: give at least one character of the plate besides * and ?")
    query = re.sub(r"\*+", "*", query)
    return PlateQuery(
        text=query, exact=query, tolerant=canonical(query), wildcard=any(c in "*?" for c in query)
    )


@dataclass(frozen=True)
class PlateEvidence:
    """A plate as the worker attaches it to an incident event: the facts, the revision of its crop,
    and the crop's JPEG on the first event of the incident that carries that revision (None after)."""

    facts: PlateFacts
    crop_revision: int
    crop_jpeg: bytes | None = None
