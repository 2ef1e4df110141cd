"""vljepa_ros.imaging: raw/compressed camera buffers -> RGB uint8, without ROS."""

from __future__ import annotations

import array
import io

import numpy as np
import pytest

from vljepa_ros.imaging import (
    SUPPORTED_ENCODINGS,
    ImageConversionError,
    compressed_to_rgb,
    cv2_to_rgb,
    image_to_rgb,
    rgb_to_image_fields,
)

H, W = 2, 3
# The expected RGB image every encoding below describes (hand-picked, all distinct).
RGB = np.array(
    [
        [[10, 20, 30], [40, 50, 60], [70, 80, 90]],
        [[100, 110, 120], [130, 140, 150], [160, 170, 180]],
    ],
    dtype=np.uint8,
)
GREY = np.array([[0, 17, 255], [128, 64, 1]], dtype=np.uint8)
GREY16 = np.array([[0x0000, 0x12FF, 0xFFFF], [0x8001, 0x40AB, 0x0180]], dtype=np.uint16)


def _rows(encoding: str, big_endian: bool = False) -> list[list[int]]:
    """The bytes of each row, written out by hand from RGB / GREY / GREY16."""
    rows = []
    for y in range(H):
        row: list[int] = []
        for x in range(W):
            r, g, b = (int(v) for v in RGB[y, x])
            if encoding == "rgb8":
                row += [r, g, b]
            elif encoding == "bgr8":
                row += [b, g, r]
            elif encoding == "rgba8":
                row += [r, g, b, 7]
            elif encoding == "bgra8":
                row += [b, g, r, 7]
            elif encoding == "mono8":
                row += [int(GREY[y, x])]
            elif encoding == "mono16":
                v = int(GREY16[y, x])
                row += [v >> 8, v & 0xFF] if big_endian else [v & 0xFF, v >> 8]
        rows.append(row)
    return rows


def _message(encoding: str, pad: int = 0, big_endian: bool = False) -> tuple[int, bytes]:
    """(step, data) with `pad` junk bytes at the end of every row."""
    rows = _rows(encoding, big_endian)
    step = len(rows[0]) + pad
    data = b"".join(bytes(r) + bytes([0xEE] * pad) for r in rows)
    return step, data


def _expected(encoding: str) -> np.ndarray:
    if encoding == "mono8":
        return np.repeat(GREY[..., None], 3, axis=2)
    if encoding == "mono16":
        return np.repeat((GREY16 >> 8).astype(np.uint8)[..., None], 3, axis=2)
    return RGB


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
@pytest.mark.parametrize("pad", [0, 5])
def test_every_encoding_matches_hand_built_array(encoding: str, pad: int) -> None:
    step, data = _message(encoding, pad)
    out = image_to_rgb(encoding, H, W, step, data, False)
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    np.testing.assert_array_equal(out, _expected(encoding))


def test_mono16_big_endian_uses_the_high_byte() -> None:
    step, data = _message("mono16", pad=2, big_endian=True)
    out = image_to_rgb("mono16", H, W, step, data, True)
    np.testing.assert_array_equal(out[..., 0], np.array([[0x00, 0x12, 0xFF], [0x80, 0x40, 0x01]]))
    np.testing.assert_array_equal(out, _expected("mono16"))
    # Reading big-endian bytes as little-endian would give the low bytes instead.
    wrong = image_to_rgb("mono16", H, W, step, data, False)
    assert not np.array_equal(wrong, out)


@pytest.mark.parametrize(
    "wrap",
    [bytes, bytearray, memoryview, lambda d: array.array("B", d), list, lambda d: np.frombuffer(d, np.uint8)],
    ids=["bytes", "bytearray", "memoryview", "array", "list", "ndarray"],
)
def test_accepts_the_buffer_types_ros_bindings_hand_over(wrap) -> None:
    step, data = _message("bgr8", pad=1)
    np.testing.assert_array_equal(image_to_rgb("bgr8", H, W, step, wrap(data), False), RGB)


def test_rgb8_is_a_zero_copy_view_and_copy_flag_detaches() -> None:
    step, data = _message("rgb8", pad=4)
    buf = bytearray(data)
    view = image_to_rgb("rgb8", H, W, step, buf, False)
    assert np.shares_memory(view, np.frombuffer(buf, np.uint8))
    owned = image_to_rgb("rgb8", H, W, step, buf, False, copy=True)
    assert not np.shares_memory(owned, np.frombuffer(buf, np.uint8))
    assert owned.flags.c_contiguous and owned.flags.writeable
    buf[0] = 99  # the view follows the buffer, the copy does not
    assert view[0, 0, 0] == 99 and owned[0, 0, 0] == 10


@pytest.mark.parametrize("encoding", ["bgr8", "rgba8", "bgra8", "mono8", "mono16"])
def test_converted_encodings_return_contiguous_arrays(encoding: str) -> None:
    # Negative/zero strides would break torch.from_numpy downstream.
    step, data = _message(encoding, pad=3)
    out = image_to_rgb(encoding, H, W, step, data, False)
    assert out.flags.c_contiguous and all(s > 0 for s in out.strides)


def test_longer_data_than_needed_is_accepted() -> None:
    step, data = _message("rgb8")
    np.testing.assert_array_equal(image_to_rgb("rgb8", H, W, step, data + b"\x00" * 10, False), RGB)


@pytest.mark.parametrize(
    "args, reason",
    [
        (("yuv422", H, W, 9, bytes(18)), "unsupported image encoding"),
        (("32FC1", H, W, 12, bytes(24)), "unsupported image encoding"),
        (("rgb8", H, W, 9, bytes(17)), "needs 18"),
        (("rgb8", H, W, 8, bytes(18)), "shorter than one row"),
        (("mono16", H, W, 5, bytes(12)), "shorter than one row"),
        (("rgb8", 0, W, 9, b""), "zero size"),
        (("rgb8", H, 0, 0, bytes(18)), "zero size"),
        (("rgb8", H, W, 9, "not bytes"), "not a byte buffer"),
        (("mono8", 1, 2, 2, [1, 300]), "not a sequence of bytes"),
    ],
)
def test_malformed_input_raises_with_reason(args, reason: str) -> None:
    with pytest.raises(ImageConversionError, match=reason):
        image_to_rgb(*args, False)
    assert issubclass(ImageConversionError, ValueError)


def test_encoding_name_is_case_insensitive() -> None:
    step, data = _message("bgr8")
    np.testing.assert_array_equal(image_to_rgb("BGR8", H, W, step, data, False), RGB)


# -- cv_bridge path -----------------------------------------------------------


def _cv_bridge_passthrough(encoding: str, step: int, data: bytes, big_endian: bool) -> np.ndarray:
    """What cv_bridge.imgmsg_to_cv2(msg, 'passthrough') returns (emulated: no cv2 here)."""
    if encoding == "mono16":
        dtype = np.dtype(">u2" if big_endian else "<u2")
        rows = np.frombuffer(data, np.uint8).reshape(H, step)[:, : W * 2].copy()
        return rows.view(dtype).reshape(H, W).astype(np.uint16)  # cv_bridge swaps to native order
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}[encoding]
    rows = np.frombuffer(data, np.uint8).reshape(H, step)[:, : W * channels]
    arr = rows.reshape(H, W, channels).copy()
    return arr[..., 0] if channels == 1 else arr


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
@pytest.mark.parametrize("big_endian", [False, True])
def test_cv2_path_agrees_with_raw_path(encoding: str, big_endian: bool) -> None:
    step, data = _message(encoding, pad=2, big_endian=big_endian)
    raw = image_to_rgb(encoding, H, W, step, data, big_endian)
    via_cv = cv2_to_rgb(_cv_bridge_passthrough(encoding, step, data, big_endian), encoding)
    assert via_cv.dtype == np.uint8 and via_cv.shape == (H, W, 3)
    np.testing.assert_array_equal(via_cv, raw)


def test_cv2_path_accepts_mono_with_channel_axis() -> None:
    np.testing.assert_array_equal(cv2_to_rgb(GREY[..., None], "mono8"), _expected("mono8"))


@pytest.mark.parametrize(
    "array_, encoding, reason",
    [
        (np.zeros((H, W), np.uint8), "bgr8", "shape"),
        (np.zeros((H, W, 4), np.uint8), "rgb8", "shape"),
        (np.zeros((H, W, 3), np.float32), "rgb8", "uint8"),
        (np.zeros((H, W), np.uint8), "mono16", "uint16"),
        (np.zeros((0, W, 3), np.uint8), "rgb8", "zero size"),
        (np.zeros((H, W, 3), np.uint8), "hsv", "unsupported"),
    ],
)
def test_cv2_path_rejects_mismatched_arrays(array_, encoding: str, reason: str) -> None:
    with pytest.raises(ImageConversionError, match=reason):
        cv2_to_rgb(array_, encoding)


# -- compressed ---------------------------------------------------------------


def _encode(img_array: np.ndarray, fmt: str, **kw) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img_array).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _photo_like(h: int = 48, w: int = 64) -> np.ndarray:
    # Smooth gradients: JPEG reproduces them closely, unlike random noise.
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 4, y * 5, (x + y) * 2], axis=2).clip(0, 255).astype(np.uint8)


def test_png_round_trip_is_exact() -> None:
    img = _photo_like()
    out = compressed_to_rgb("png", _encode(img, "PNG"))
    np.testing.assert_array_equal(out, img)
    # image_transport's format string, and a memoryview payload.
    np.testing.assert_array_equal(compressed_to_rgb("bgr8; png compressed bgr8", memoryview(_encode(img, "PNG"))), img)


def test_jpeg_round_trip_is_close() -> None:
    img = _photo_like()
    out = compressed_to_rgb("rgb8; jpeg compressed bgr8", array.array("B", _encode(img, "JPEG", quality=95)))
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - img.astype(int)).mean() < 2.0


def test_grey_pngs_follow_the_raw_rules() -> None:
    np.testing.assert_array_equal(compressed_to_rgb("png", _encode(GREY, "PNG")), _expected("mono8"))
    # 16-bit grey keeps the high byte, like mono16.
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(GREY16).save(buf, format="PNG")
    np.testing.assert_array_equal(compressed_to_rgb("png", buf.getvalue()), _expected("mono16"))


def test_rgba_png_drops_alpha() -> None:
    rgba = np.concatenate([RGB, np.full((H, W, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(compressed_to_rgb("png", _encode(rgba, "PNG")), RGB)


@pytest.mark.parametrize(
    "fmt, data, reason",
    [
        ("jpeg", b"", "empty"),
        ("jpeg", b"\xff\xd8\xff not really a jpeg", "cannot decode"),
        ("png", b"garbage", "cannot decode"),
        ("16UC1; compressedDepth png", b"\x00" * 20, "compressedDepth"),
    ],
)
def test_malformed_compressed_raises_with_reason(fmt: str, data: bytes, reason: str) -> None:
    with pytest.raises(ImageConversionError, match=reason):
        compressed_to_rgb(fmt, data)


def test_other_codecs_are_rejected() -> None:
    with pytest.raises(ImageConversionError, match="only JPEG and PNG"):
        compressed_to_rgb("bmp", _encode(RGB, "BMP"))


# -- publisher side -----------------------------------------------------------


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_rgb_to_image_fields_round_trips(encoding: str) -> None:
    height, width, step, data = rgb_to_image_fields(RGB, encoding)
    assert (height, width) == (H, W) and isinstance(data, bytes)
    assert step == W * (4 if "a" in encoding[:4] else 3) and len(data) == step * height
    np.testing.assert_array_equal(image_to_rgb(encoding, height, width, step, data, False), RGB)


def test_rgb_to_image_fields_mono8_is_luma() -> None:
    img = np.array([[[255, 255, 255], [255, 0, 0], [0, 0, 0]]], dtype=np.uint8)
    height, width, step, data = rgb_to_image_fields(img, "mono8")
    assert (height, width, step) == (1, 3, 3)
    assert list(data) == [255, 76, 0]  # 0.299 * 255 = 76.2


@pytest.mark.parametrize(
    "bad, encoding, reason",
    [
        (np.zeros((H, W), np.uint8), "rgb8", "expected an"),
        (np.zeros((H, W, 3), np.float32), "rgb8", "expected an"),
        (np.zeros((0, W, 3), np.uint8), "rgb8", "zero size"),
        (RGB, "mono16", "does not write"),
        (RGB, "nv12", "unsupported"),
    ],
)
def test_rgb_to_image_fields_rejects_bad_input(bad, encoding: str, reason: str) -> None:
    with pytest.raises(ImageConversionError, match=reason):
        rgb_to_image_fields(bad, encoding)


def test_module_does_not_import_ros() -> None:
    import re

    import vljepa_ros.imaging

    src = open(vljepa_ros.imaging.__file__).read()
    assert not re.search(r"^\s*(import|from)\s+(rclpy|sensor_msgs|cv_bridge)", src, re.M)


def _png_bomb(width, height, rows=None):
    """A valid grey PNG of width x height, all black: a few kB that decode to
    width x height x 3 bytes (a decompression bomb at large sizes). ``rows``:
    encode only that many rows (a header that promises more than it holds)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte + pixels
    idat = b"".join(z.compress(row) for _ in range(height if rows is None else rows)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_decompression_bomb_is_refused_before_decoding():
    from vljepa_ros.imaging import DEFAULT_MAX_PIXELS

    bomb = _png_bomb(6000, 6000)  # 36 M pixels (108 MB of RGB) from a few tens of kB
    assert len(bomb) < 200_000 and 6000 * 6000 > DEFAULT_MAX_PIXELS
    with pytest.raises(ImageConversionError, match=r"6000x6000 = 36000000 pixels is larger than max_pixels"):
        compressed_to_rgb("png", bomb)
    small = _png_bomb(64, 48)
    assert compressed_to_rgb("png", small).shape == (48, 64, 3)
    with pytest.raises(ImageConversionError, match="max_pixels=1000"):
        compressed_to_rgb("png", small, max_pixels=1000)


def test_pillow_decompression_bomb_error_is_a_conversion_error():
    # with no cap of ours, Pillow's own limit (2 x MAX_IMAGE_PIXELS, checked from
    # the header in Image.open) still reads as a malformed image, not a crash
    from PIL import Image

    side = int((2 * Image.MAX_IMAGE_PIXELS) ** 0.5) + 16
    with pytest.raises(ImageConversionError, match="cannot decode"):
        compressed_to_rgb("png", _png_bomb(side, side, rows=1), max_pixels=None)


def test_raw_images_over_max_pixels_are_refused_before_reading_data():
    with pytest.raises(ImageConversionError, match="larger than max_pixels=100"):
        image_to_rgb("rgb8", 20, 20, 60, bytes(1200), max_pixels=100)
    assert image_to_rgb("rgb8", 10, 10, 30, bytes(300), max_pixels=100).shape == (10, 10, 3)
