import pytest
import torch

from drawloop.vision.procedural import CHUNK, KINDS, generate


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # fixture in conftest.py


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_shape_dtype_and_range(kind):
    images = generate(kind, 10, 16, seed=0)
    assert images.shape == (10, 3, 16, 16)
    assert images.dtype == torch.uint8
    assert images.float().std() > 20  # real contrast, not a flat canvas


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_seeded_and_prefix_stable(kind):
    a = generate(kind, CHUNK + 5, 16, seed=3)
    assert torch.equal(a, generate(kind, CHUNK + 5, 16, seed=3))
    assert torch.equal(a[:7], generate(kind, 7, 16, seed=3))
    assert not torch.equal(a[:2], generate(kind, 2, 16, seed=4))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_images_differ_from_each_other(kind):
    images = generate(kind, 8, 16, seed=0).float()
    diffs = (images[:, None] - images[None]).abs().mean(dim=(2, 3, 4))
    off_diagonal = diffs[~torch.eye(8, dtype=torch.bool)]
    assert off_diagonal.min() > 5


def test_dead_leaves_are_piecewise_flat():
    # Occluding solid leaves: most horizontal neighbours share a colour exactly; spectral noise does not.
    leaves = generate("deadleaves", 16, 32, seed=0)
    noise = generate("spectral", 16, 32, seed=0)
    def flat_fraction(x):
        return (x[..., 1:] == x[..., :-1]).all(dim=1).float().mean()
    assert flat_fraction(leaves) > 0.5
    assert flat_fraction(noise) < 0.3


def test_spectral_noise_has_more_low_than_high_frequency_power():
    x = generate("spectral", 32, 32, seed=0).float()
    power = torch.fft.rfft2(x - x.mean(dim=(2, 3), keepdim=True)).abs().pow(2).mean(dim=(0, 1))
    low, high = power[1:4, 1:4].mean(), power[12:16, 12:16].mean()
    assert low > 10 * high


def test_bad_requests_are_clear_errors():
    with pytest.raises(ValueError, match="unknown procedural kind"):
        generate("fractals", 4, 16)
    with pytest.raises(ValueError, match="n >= 1"):
        generate("shapes", 0, 16)
