"""Decoding, channel conversion and resizing of single images, against independent computations."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tlpipe.components.transform.images import ImageDecodeError, decode, transform_image

pytestmark = pytest.mark.quick

RNG = np.random.default_rng(7)


def _random(h: int, w: int, c: int) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w, c), dtype=np.uint8)


@pytest.mark.parametrize("method", ["bilinear", "bicubic", "area", "nearest"])
@pytest.mark.parametrize("source, size", [((12, 10), (8, 8)), ((9, 13), (20, 5)), ((8, 8), (24, 16))])
def test_resize_follows_the_tensorflow_recipe(kit, method, source, size):
    pixels = _random(*source, 3)
    got, source_shape = transform_image(kit.encode(pixels), size, 3, method)
    expected = kit.tf_reference(pixels, size, 3, method)
    assert source_shape == (*source, 3)
    assert got.shape == (*size, 3) and got.dtype == np.uint8
    difference = np.abs(got.astype(int) - expected.astype(int))
    assert difference.max() <= (0 if method == "nearest" else 1)
    assert np.mean(difference > 0) < 0.02  # only rounding ties differ


def test_nearest_picks_the_source_pixel_under_each_output_centre(kit):
    pixels = _random(7, 11, 1)
    got, _ = transform_image(kit.encode(pixels), (5, 16), 1, "nearest")
    rows = np.floor((np.arange(5) + 0.5) * 7 / 5).astype(int)
    cols = np.floor((np.arange(16) + 0.5) * 11 / 16).astype(int)
    np.testing.assert_array_equal(got[..., 0], pixels[..., 0][np.ix_(rows, cols)])


def test_area_halving_is_the_mean_of_each_2x2_block(kit):
    pixels = _random(8, 6, 3)
    got, _ = transform_image(kit.encode(pixels), (4, 3), 3, "area")
    blocks = pixels.astype(np.float64).reshape(4, 2, 3, 2, 3).mean(axis=(1, 3))
    np.testing.assert_array_equal(got, np.rint(blocks).astype(np.uint8))


def test_grey_becomes_rgb_by_copying_the_plane(kit):
    grey = _random(6, 5, 1)
    got, source_shape = transform_image(kit.encode(grey), (6, 5), 3, "bilinear")
    assert source_shape == (6, 5, 1)
    np.testing.assert_array_equal(got, np.repeat(grey, 3, axis=-1))


def test_rgb_becomes_grey_with_luma_weights(kit):
    rgb = _random(6, 5, 3)
    got, _ = transform_image(kit.encode(rgb), (6, 5), 1, "bilinear")
    luma = rgb.astype(np.float64) @ np.array([0.2989, 0.5870, 0.1140])
    assert got.shape == (6, 5, 1)
    assert np.abs(got[..., 0].astype(int) - np.rint(luma).astype(int)).max() <= 1


def test_null_channels_keep_grey_grey_and_drop_alpha(kit):
    grey, _ = transform_image(kit.encode(_random(4, 4, 1)), (4, 4), None, "bilinear")
    rgba = _random(4, 4, 4)
    colour, source_shape = transform_image(kit.encode(rgba), (4, 4), None, "bilinear")
    assert grey.shape == (4, 4, 1)
    assert source_shape == (4, 4, 4)
    np.testing.assert_array_equal(colour, rgba[..., :3])


def test_sixteen_bit_grey_is_scaled_to_eight_bits():
    wide = np.array([[0, 257, 65535], [32896, 1000, 60000]], dtype=np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(wide).save(buffer, format="PNG")
    got = decode(buffer.getvalue())
    np.testing.assert_array_equal(got[..., 0], np.rint(wide / 257.0).astype(np.uint8))


def test_gif_palette_and_bmp_decode_losslessly(kit):
    palette_image = np.array([[[255, 0, 0], [0, 0, 255]], [[0, 255, 0], [255, 0, 0]]], dtype=np.uint8)
    np.testing.assert_array_equal(decode(kit.encode(palette_image, "GIF")), palette_image)
    pixels = _random(5, 3, 3)
    np.testing.assert_array_equal(decode(kit.encode(pixels, "BMP")), pixels)


def test_jpeg_decodes_like_tensorflow(kit):
    pixels = np.repeat(np.linspace(0, 255, 16, dtype=np.uint8)[None, :, None], 16, axis=0).repeat(3, axis=-1)
    encoded = kit.encode(pixels, "JPEG")
    reference = tf.io.decode_jpeg(encoded, dct_method="INTEGER_ACCURATE").numpy()
    assert np.abs(decode(encoded).astype(int) - reference.astype(int)).max() <= 1


@pytest.mark.parametrize(
    "encoded, message",
    [
        (b"definitely not an image", "not a PNG, JPEG, GIF or BMP image"),
        (b"II*\x00" + bytes(64), "not a PNG, JPEG, GIF or BMP image"),  # a TIFF header
    ],
)
def test_bytes_that_are_not_an_accepted_image_fail(encoded, message):
    with pytest.raises(ImageDecodeError, match=message):
        decode(encoded)


def test_a_truncated_png_fails(kit):
    encoded = kit.encode(_random(16, 16, 3))
    with pytest.raises(ImageDecodeError):
        decode(encoded[: len(encoded) // 2])
