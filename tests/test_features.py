"""Image preparation and the offline embedders (real EfficientNet-Lite0 and MiniLM weights)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from drawloop.imaging import content_box, load_image
from drawloop.vision.features import ModuleEmbedder, TextEmbedder, default_embedder, l2_normalise, prepare


def apple(size=256, box=(60, 60, 200, 200), background="white") -> Image.Image:
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    draw.ellipse(box, fill=(210, 30, 40))
    x0, y0, x1, _ = box
    middle = (x0 + x1) // 2
    draw.rectangle((middle - 4, y0 - 30, middle + 4, y0 + 5), fill=(100, 60, 20))
    draw.ellipse((middle + 5, y0 - 30, middle + 45, y0 - 10), fill=(40, 160, 50))
    return image


def bicycle(size=256) -> Image.Image:
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    for cx in (70, 186):
        draw.ellipse((cx - 50, 120, cx + 50, 220), outline="black", width=8)
    draw.line((70, 170, 120, 100, 186, 170, 130, 170, 70, 170), fill=(30, 90, 200), width=8)
    return image


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------- preparation

def test_load_image_flattens_transparency_onto_white():
    transparent = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    assert load_image(png_bytes(transparent)).getpixel((3, 3)) == (255, 255, 255)


def test_load_image_rejects_other_types_clearly():
    with pytest.raises(TypeError, match="PNG bytes, a path or a PIL image"):
        load_image(12345)


def test_content_box_finds_the_drawing_and_none_on_blank():
    image = Image.new("RGB", (100, 100), "white")
    ImageDraw.Draw(image).rectangle((10, 20, 29, 49), fill="black")
    assert content_box(image) == (10, 20, 30, 50)
    assert content_box(Image.new("RGB", (50, 50), (240, 240, 240))) is None


def test_prepare_crops_small_drawing_to_fill_the_frame():
    def red(pixels):
        return (pixels[..., 0] > 150) & (pixels[..., 1] < 90)

    small = apple(box=(10, 40, 50, 80))               # a tiny apple in a corner
    prepared = np.asarray(prepare(small, size=224))
    assert prepared.shape == (224, 224, 3)
    assert red(prepared).mean() > 5 * red(np.asarray(small)).mean()   # it now fills the frame
    assert red(prepared)[130, 112]                                    # near the middle


def test_prepare_keeps_a_coloured_background_and_a_blank_canvas_blank():
    sky = apple(background=(120, 180, 240))
    corner = prepare(sky).getpixel((0, 0))
    assert max(abs(a - b) for a, b in zip(corner, (120, 180, 240))) < 10
    blank = np.asarray(prepare(Image.new("RGB", (256, 256), "white")))
    assert blank.min() == 255


# ---------------------------------------------------------------- image embedder

@pytest.fixture(scope="module")
def embedder():
    return default_embedder()


def test_embedder_returns_unit_float32_rows(embedder):
    vectors = embedder.embed([apple(), png_bytes(bicycle()), apple(box=(20, 20, 120, 120))])
    assert vectors.shape == (3, 1280) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, 1280)


def test_embedding_ignores_position_and_scale_but_not_content(embedder):
    big, small, other = embedder.embed([apple(), apple(box=(150, 150, 230, 230)), bicycle()])
    same = float(big @ small)
    different = float(big @ other)
    assert same > 0.88
    assert same - different > 0.2


def test_embedding_is_deterministic_across_batch_sizes(embedder):
    images = [apple(), bicycle(), apple(box=(30, 60, 140, 170))]
    together = embedder.embed(images)
    alone = np.concatenate([embedder.embed([im]) for im in images])
    assert np.abs(together - alone).max() < 1e-4


def test_any_torch_module_plugs_in_as_an_embedder():
    import torch

    class MeanColour(torch.nn.Module):
        feature_dim = 3

        def forward(self, x):
            return x.mean(dim=(2, 3))

    vectors = ModuleEmbedder(MeanColour(), name="mean-colour", size=32).embed([apple(), bicycle()])
    assert vectors.shape == (2, 3)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0, 0] > vectors[0, 2]      # the apple is redder than it is blue


# ---------------------------------------------------------------- text embedder

def test_text_embedder_maps_concepts_near_their_labels():
    text = TextEmbedder()
    concept, label, near, far = text.embed(["a red apple", "red apple", "green apple", "motor scooter"])
    assert text.embed(["x"]).shape == (1, 384)
    assert float(concept @ label) > 0.85
    assert float(concept @ label) > float(concept @ near) > float(concept @ far)


def test_l2_normalise_handles_zero_rows():
    out = l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert np.allclose(out[0], [0.6, 0.8]) and np.all(np.isfinite(out))
