import pytest
import torch

from drawloop.vision.augment import (
    AugmentConfig,
    augment,
    color_jitter,
    gaussian_blur,
    random_grayscale,
    random_resized_crop,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # fixture in conftest.py


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def batch():
    return torch.rand(8, 3, 24, 24, generator=_gen(1))


def _in_range(x):
    return x.min().item() >= 0.0 and x.max().item() <= 1.0


@pytest.mark.parametrize(
    "op",
    [
        lambda x, g: random_resized_crop(x, (0.2, 1.0), (0.75, 1.33), 0.5, g),
        lambda x, g: color_jitter(x, 0.4, 0.4, 0.4, 0.1, 1.0, g),
        lambda x, g: random_grayscale(x, 0.5, g),
        lambda x, g: gaussian_blur(x, (0.1, 2.0), 1.0, g),
        lambda x, g: augment(x, AugmentConfig(), g),
    ],
    ids=["crop", "jitter", "gray", "blur", "pipeline"],
)
def test_each_op_keeps_shape_dtype_and_range(batch, op):
    out = op(batch, _gen())
    assert out.shape == batch.shape
    assert out.dtype == batch.dtype
    assert _in_range(out)
    assert not torch.equal(out, batch)


def test_full_crop_without_flip_is_identity(batch):
    out = random_resized_crop(batch, (1.0, 1.0), (1.0, 1.0), 0.0, _gen())
    assert torch.allclose(out, batch, atol=1e-5)


def test_full_crop_with_certain_flip_mirrors(batch):
    out = random_resized_crop(batch, (1.0, 1.0), (1.0, 1.0), 1.0, _gen())
    assert torch.allclose(out, batch.flip(-1), atol=1e-5)


def test_small_crops_zoom_in(batch):
    # A 20% crop magnifies, so neighbouring pixels differ less than in the original noise.
    out = random_resized_crop(batch, (0.2, 0.2), (1.0, 1.0), 0.0, _gen())
    def roughness(x):
        return (x[..., 1:] - x[..., :-1]).abs().mean()
    assert roughness(out) < 0.6 * roughness(batch)


def test_grayscale_makes_channels_equal(batch):
    out = random_grayscale(batch, 1.0, _gen())
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 1], out[:, 2])
    assert torch.equal(random_grayscale(batch, 0.0, _gen()), batch)


def test_jitter_with_zero_probability_is_identity(batch):
    assert torch.allclose(color_jitter(batch, 0.4, 0.4, 0.4, 0.1, 0.0, _gen()), batch, atol=1e-5)


def test_hue_turn_keeps_gray_pixels_gray():
    gray = torch.full((4, 3, 8, 8), 0.5)
    out = color_jitter(gray, 0.0, 0.0, 0.0, 0.5, 1.0, _gen())
    assert torch.allclose(out, gray, atol=1e-4)


def test_blur_smooths_and_keeps_the_mean(batch):
    out = gaussian_blur(batch, (2.0 * 224 / 24, 2.0 * 224 / 24), 1.0, _gen())  # sigma 2 px at 24 px
    assert out.std() < 0.6 * batch.std()
    assert abs(out.mean() - batch.mean()) < 0.02
    assert torch.equal(gaussian_blur(batch, (0.1, 2.0), 0.0, _gen()), batch)


def test_same_seed_same_views_different_seed_different_views(batch):
    cfg = AugmentConfig()
    assert torch.equal(augment(batch, cfg, _gen(3)), augment(batch, cfg, _gen(3)))
    assert not torch.equal(augment(batch, cfg, _gen(3)), augment(batch, cfg, _gen(4)))


def test_views_differ_per_image():
    same = torch.rand(1, 3, 16, 16, generator=_gen(2)).expand(6, -1, -1, -1).contiguous()
    out = augment(same, AugmentConfig(), _gen())
    assert not torch.allclose(out[0], out[1])


def test_rejects_uint8_and_wrong_shapes():
    with pytest.raises(ValueError, match="float"):
        augment(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), AugmentConfig(), _gen())
    with pytest.raises(ValueError, match="B, 3, H, W"):
        augment(torch.zeros(3, 8, 8), AugmentConfig(), _gen())
