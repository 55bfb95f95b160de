"""Checks on pictures people upload (search query photos, photos from the field), before decoding.

A small file can declare a huge picture (a 50 KB PNG of 8000x8000 px costs 200 MB to decode), so
the size is read from the header alone and checked first; only then is a picture decoded.
Problems raise :class:`~retina.services.core.validation.InvalidArgument` naming the field.
"""

from __future__ import annotations

import io
from collections.abc import Collection
from dataclasses import dataclass

import cv2
import numpy as np
import PIL.Image

from retina.services.core.validation import InvalidArgument

# A picture is decoded only if its header promises at most this many pixels (a 50-megapixel photo,
# ~150 MB decoded).
MAX_IMAGE_PIXELS = 50_000_000
JPEG_OR_PNG = frozenset({"JPEG", "MPO", "PNG"})  # MPO: phones' multi-frame JPEG
# The file suffix a stored picture gets, by the format its header names.
SUFFIXES = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png"}


@dataclass(frozen=True)
class ImageHeader:
    """What a picture's header says: Pillow's format name and the size in pixels."""

    format: str
    width: int
    height: int


def image_header(
    data: bytes,
    field: str,
    formats: Collection[str] = JPEG_OR_PNG,
    *,
    accepted: str = "JPEG or PNG",
    max_side: int | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> ImageHeader:
    """The header of a picture of one of ``formats`` (Pillow's names), read without decoding pixels.

    InvalidArgument naming ``field`` when the bytes are not such a picture, or the picture is
    larger than ``max_side`` pixels a side or ``max_pixels`` in all (``accepted`` is the list of
    formats the message names).
    """
    try:
        with PIL.Image.open(io.BytesIO(data)) as header:
            kind, (width, height) = header.format, header.size
    except PIL.Image.DecompressionBombError:  # Pillow's own limit, far above ours
        raise InvalidArgument(field, f"over the {max_pixels / 1e6:.0f} megapixel limit") from None
    except Exception:  # Pillow's plug-ins raise many kinds for damaged headers
        raise InvalidArgument(field, f"not a picture (send {accepted} bytes)") from None
    if kind not in formats:
        raise InvalidArgument(field, f"{kind} pictures are not taken (send {accepted})")
    if max_side is not None and max(width, height) > max_side:
        raise InvalidArgument(field, f"{width}x{height} px is over the {max_side} px limit")
    if width * height > max_pixels:
        raise InvalidArgument(
            field,
            f"{width}x{height} px is {width * height / 1e6:.0f} megapixels, over the"
            f" {max_pixels / 1e6:.0f} megapixel limit",
        )
    return ImageHeader(kind, width, height)


def decode_image(data: bytes, field: str) -> np.ndarray:
    """Decode a picture whose header passed :func:`image_header` (BGR); InvalidArgument if damaged."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise InvalidArgument(field, "the picture is damaged and cannot be decoded")
    return image


def check_picture(data: bytes, field: str, max_bytes: int) -> str:
    """Check an uploaded JPEG or PNG whole (size, header, then a full decode); return the file
    suffix to store it under (``jpg`` or ``png``). InvalidArgument naming ``field`` otherwise."""
    if not data:
        raise InvalidArgument(field, "empty")
    if len(data) > max_bytes:
        raise InvalidArgument(
            field, f"{len(data) / 2**20:.1f} MB is over the {max_bytes / 2**20:.0f} MB limit"
        )
    header = image_header(data, field)
    decode_image(data, field)
    return SUFFIXES[header.format]
