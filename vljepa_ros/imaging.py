"""Camera buffers -> RGB uint8 arrays, without ROS and without cv_bridge.

The perception node receives ``sensor_msgs/Image`` (or ``CompressedImage``)
and needs an ``(H, W, 3)`` uint8 RGB array. cv_bridge is not always installed
(PyPI ROS wheels, bare machines), so this module decodes the raw fields
itself. It takes plain values (the message's fields), never message types, so
it runs and is tested anywhere numpy runs.

Conventions (the same on every path, so a model sees identical pixels whether
cv_bridge is installed or not):

* colour encodings keep their three colour channels, reordered to RGB; alpha
  is dropped;
* ``mono8`` is replicated to three channels;
* ``mono16`` keeps its high byte (``value >> 8``), then is replicated;
  ``is_bigendian`` says which byte of each pair is the high one.

Zero-copy: ``rgb8`` returns a strided view of the message buffer (read-only
when the buffer is ``bytes``); every other encoding has to move bytes anyway
and returns one fresh C-contiguous array. Pass ``copy=True`` to always get an
array you own and may write to.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageConversionError",
    "SUPPORTED_ENCODINGS",
    "image_to_rgb",
    "compressed_to_rgb",
    "cv2_to_rgb",
    "rgb_to_image_fields",
]


class ImageConversionError(ValueError):
    """A camera buffer could not be turned into an RGB array (reason in the message)."""


# encoding -> (channels, bytes per channel). Names are the ROS
# sensor_msgs/image_encodings strings.
_LAYOUT: dict[str, tuple[int, int]] = {
    "rgb8": (3, 1),
    "bgr8": (3, 1),
    "rgba8": (4, 1),
    "bgra8": (4, 1),
    "mono8": (1, 1),
    "mono16": (1, 2),
}
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_LAYOUT)

# Largest image accepted (width x height): 4096 x 4096 covers 4K and 12 MP
# cameras. A compressed image is checked from its header, before decoding: a
# 420 kB PNG of 12000 x 12000 decoded to 3.3 GB of process memory.
DEFAULT_MAX_PIXELS = 4096 * 4096


def _check_pixels(height: int, width: int, max_pixels: int | None) -> None:
    if max_pixels is not None and height * width > max_pixels:
        raise ImageConversionError(
            f"image of {width}x{height} = {height * width} pixels is larger than max_pixels={max_pixels}"
        )


def _normalise_encoding(encoding: str) -> str:
    name = str(encoding).strip().lower()
    if name not in _LAYOUT:
        raise ImageConversionError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    return name


def _as_byte_array(data: Any) -> np.ndarray:
    """A flat uint8 view of ``data`` (bytes, bytearray, memoryview, array.array, ndarray, list)."""
    if isinstance(data, np.ndarray):
        # No copy when the array is already contiguous.
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    if isinstance(data, (list, tuple)):
        # Some bindings hand over a list of ints; this path has to copy.
        try:
            return np.asarray(data, dtype=np.uint8)
        except (OverflowError, ValueError, TypeError) as exc:
            raise ImageConversionError(f"image data is not a sequence of bytes: {exc}") from exc
    try:
        # memoryview.cast('B') flattens any buffer (array.array('H'), 2-D
        # memoryviews, ...) to bytes without copying.
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
    except (TypeError, ValueError) as exc:
        raise ImageConversionError(
            f"image data of type {type(data).__name__} is not a byte buffer: {exc}"
        ) from exc
    return np.frombuffer(view, dtype=np.uint8)


def _pixels_to_rgb(pixels: np.ndarray, encoding: str, copy: bool) -> np.ndarray:
    """Shared last step of every path.

    ``pixels`` is uint8 ``(H, W, C)`` in the encoding's channel order; for
    mono16 it already holds the high byte (``(H, W, 1)``).
    """
    if encoding == "rgb8":
        return np.array(pixels, copy=True, order="C") if copy else pixels
    if encoding == "bgr8":
        out = pixels[..., ::-1]
    elif encoding == "rgba8":
        out = pixels[..., :3]
    elif encoding == "bgra8":
        out = pixels[..., 2::-1]
    else:  # mono8, mono16 (high byte)
        out = np.broadcast_to(pixels[..., :1], pixels.shape[:2] + (3,))
    # Reordered / broadcast views have negative or zero strides that trip
    # torch.from_numpy and friends; the one copy happens here.
    return np.ascontiguousarray(out)


def image_to_rgb(
    encoding: str,
    height: int,
    width: int,
    step: int,
    data: Any,
    is_bigendian: bool = False,
    *,
    copy: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Convert the fields of a ``sensor_msgs/Image`` to an ``(H, W, 3)`` uint8 RGB array.

    ``step`` is the row length in bytes; bytes after ``width * channels *
    bytes_per_channel`` in each row are padding and are skipped. Raises
    :class:`ImageConversionError` (a ``ValueError``) with the reason on
    malformed input, and on images over ``max_pixels`` (None = no cap).
    """
    name = _normalise_encoding(encoding)
    channels, depth = _LAYOUT[name]
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"image has zero size ({height}x{width})")
    _check_pixels(height, width, max_pixels)
    row_bytes = width * channels * depth
    if step < row_bytes:
        raise ImageConversionError(
            f"step {step} is shorter than one row of {width} {name} pixels ({row_bytes} bytes)"
        )
    flat = _as_byte_array(data)
    needed = step * height
    if flat.size < needed:
        raise ImageConversionError(
            f"image data has {flat.size} bytes, {name} {height}x{width} with step {step} needs {needed}"
        )
    # Strided view: rows of `step` bytes, padding cut off, no copy.
    rows = flat[:needed].reshape(height, step)[:, :row_bytes]
    if name == "mono16":
        pairs = rows.reshape(height, width, 2)
        high = 0 if is_bigendian else 1  # value >> 8 is exactly the high byte
        pixels = pairs[..., high : high + 1]
    else:
        pixels = rows.reshape(height, width, channels)
    return _pixels_to_rgb(pixels, name, copy)


def cv2_to_rgb(array: np.ndarray, encoding: str, *, copy: bool = False,
               max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Convert what ``cv_bridge.imgmsg_to_cv2(msg, "passthrough")`` returns to RGB uint8.

    cv_bridge keeps the message's channel order (BGR for bgr8, RGB for rgb8,
    4 channels for rgba8/bgra8, ``(H, W)`` for mono) and native-endian uint16
    for mono16. The result is identical to :func:`image_to_rgb` on the same
    message.
    """
    name = _normalise_encoding(encoding)
    channels, depth = _LAYOUT[name]
    arr = np.asarray(array)
    if arr.ndim == 2 and channels == 1:
        arr = arr[..., np.newaxis]
    if arr.ndim != 3 or arr.shape[2] != channels:
        raise ImageConversionError(
            f"{name} array must have shape (H, W{', ' + str(channels) if channels > 1 else ''}), got {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageConversionError(f"image has zero size ({arr.shape[0]}x{arr.shape[1]})")
    _check_pixels(arr.shape[0], arr.shape[1], max_pixels)
    expected = np.uint16 if depth == 2 else np.uint8
    if arr.dtype != expected:
        raise ImageConversionError(f"{name} array must be {np.dtype(expected).name}, got {arr.dtype}")
    if name == "mono16":
        arr = (arr >> 8).astype(np.uint8)
    return _pixels_to_rgb(arr, name, copy)


def compressed_to_rgb(format: str, data: Any, *,  # noqa: A002 (the ROS field is called format)
                      max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG or PNG) to ``(H, W, 3)`` uint8 RGB.

    ``format`` is the message's field, e.g. ``"jpeg"``, ``"png"`` or
    image_transport's ``"bgr8; jpeg compressed bgr8"``. The codec is detected
    from the bytes (the field is free text in practice); compressedDepth is
    rejected because it is not an image. 16-bit PNGs keep their high byte,
    like mono16. The size is checked against ``max_pixels`` from the header,
    before anything is decoded (a decompression bomb is a malformed image).
    """
    fmt = str(format).lower()
    if "compresseddepth" in fmt:
        raise ImageConversionError(f"compressedDepth images are depth maps, not RGB ({format!r})")
    flat = _as_byte_array(data)
    if flat.size == 0:
        raise ImageConversionError("compressed image data is empty")
    from PIL import Image, UnidentifiedImageError  # imported here: only this path needs Pillow

    try:
        with Image.open(io.BytesIO(flat.tobytes())) as img:  # reads the header only
            if img.format not in ("JPEG", "PNG"):
                raise ImageConversionError(f"compressed image is {img.format}, only JPEG and PNG are supported")
            _check_pixels(img.height, img.width, max_pixels)
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                # 16-bit grey: same rule as mono16 (high byte), not Pillow's clipping.
                grey = (np.clip(np.asarray(img).astype(np.int64), 0, 65535) >> 8).astype(np.uint8)
                return np.ascontiguousarray(np.repeat(grey[..., np.newaxis], 3, axis=2))
            rgb = np.asarray(img.convert("RGB"))
    except ImageConversionError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
        raise ImageConversionError(f"cannot decode compressed image (format {format!r}): {exc}") from exc
    if rgb.ndim != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageConversionError(f"compressed image decoded to an empty array {rgb.shape}")
    return rgb


def rgb_to_image_fields(rgb: np.ndarray, encoding: str = "rgb8") -> tuple[int, int, int, bytes]:
    """Pack an ``(H, W, 3)`` uint8 RGB array into ``(height, width, step, data)`` for a publisher.

    Rows are not padded (``step = width * channels``); ``is_bigendian`` is 0
    for every 8-bit encoding. Encodings: rgb8, bgr8, rgba8/bgra8 (alpha 255)
    and mono8 (ITU-R BT.601 luma, rounded).
    """
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ImageConversionError(f"expected an (H, W, 3) uint8 RGB array, got {arr.shape} {arr.dtype}")
    height, width = arr.shape[:2]
    if height == 0 or width == 0:
        raise ImageConversionError(f"image has zero size ({height}x{width})")
    name = _normalise_encoding(encoding)
    if name == "rgb8":
        out = arr
    elif name == "bgr8":
        out = arr[..., ::-1]
    elif name in ("rgba8", "bgra8"):
        colour = arr if name == "rgba8" else arr[..., ::-1]
        alpha = np.full((height, width, 1), 255, dtype=np.uint8)
        out = np.concatenate([colour, alpha], axis=2)
    elif name == "mono8":
        luma = arr.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        out = np.clip(np.rint(luma), 0, 255).astype(np.uint8)
    else:
        raise ImageConversionError(f"rgb_to_image_fields does not write {name}")
    channels = _LAYOUT[name][0]
    return height, width, width * channels, np.ascontiguousarray(out).tobytes()
