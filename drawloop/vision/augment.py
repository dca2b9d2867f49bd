"""MoCo-v2 / SimCLR augmentations in plain torch, batched on tensors, every random draw seeded.

    from drawloop.vision.augment import AugmentConfig, augment
    gen = torch.Generator().manual_seed(0)
    view = augment(images, AugmentConfig(), gen)     # images: float (B, 3, H, W) in [0, 1]; same shape out

The pipeline is MoCo-v2's: random resized crop (scale 0.2-1) with horizontal flip, colour jitter
(p=0.8), random grayscale (p=0.2), Gaussian blur (p=0.5). Every random parameter is drawn on the CPU
from the caller's generator, one small tensor per batch, and only then moved to the images' device, so a
seed gives the same views on CPU and CUDA and no per-image Python loop ever runs. Each op is also public
(`random_resized_crop`, `color_jitter`, ...) for tests and custom pipelines.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

# RGB -> YIQ: hue is a rotation of the (I, Q) chroma plane; one 3x3 matrix, so hue jitter stays batched.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)
_LUMA = torch.tensor([0.299, 0.587, 0.114])


@dataclass
class AugmentConfig:
    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    gray_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)  # in pixels of a 224 px image; scaled to the real size

    def to_dict(self) -> dict:
        return asdict(self)


def augment(images: torch.Tensor, config: AugmentConfig, gen: torch.Generator,
            part: tuple[int, int] | None = None) -> torch.Tensor:
    """One random view of every image in the batch.

    `part=(start, total)`: these images are rows start.. of a batch of `total` (one DDP rank's share).
    Every parameter is then drawn for the whole batch and only these rows kept, so the views are the ones
    a single process would make for these images, and `gen` advances alike on every rank.
    """
    _check_batch(images)
    if part is not None:
        start, total = part
        if start < 0 or start + images.shape[0] > total:
            raise ValueError(f"rows {start}..{start + images.shape[0]} are not inside a batch of {total}")
        gen = _Share(gen, start, total)
    x = random_resized_crop(images, config.crop_scale, config.crop_ratio, config.flip_p, gen)
    x = color_jitter(x, config.brightness, config.contrast, config.saturation, config.hue, config.jitter_p, gen)
    x = random_grayscale(x, config.gray_p, gen)
    return gaussian_blur(x, config.blur_sigma, config.blur_p, gen)


def random_resized_crop(
    images: torch.Tensor,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    flip_p: float,
    gen: torch.Generator,
) -> torch.Tensor:
    """Crop a random box (area fraction in `scale`, aspect in `ratio`) and resize it back to the input size.

    One affine sampling grid per image does crop, resize and flip at once (a negative x-scale is the flip).
    """
    b = images.shape[0]
    area = _uniform(b, *scale, gen)
    log_ratio = _uniform(b, math.log(ratio[0]), math.log(ratio[1]), gen)
    aspect = torch.exp(log_ratio)
    # Box size as a fraction of the image side; clamp so the box always fits (torchvision retries instead).
    w = torch.sqrt(area * aspect).clamp(max=1.0)
    h = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (_uniform(b, 0, 1, gen) * (1 - w) + w / 2) * 2 - 1  # box centre in [-1, 1] grid units
    cy = (_uniform(b, 0, 1, gen) * (1 - h) + h / 2) * 2 - 1
    flip = torch.where(_uniform(b, 0, 1, gen) < flip_p, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    theta = theta.to(images.device, images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def color_jitter(
    images: torch.Tensor,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
    p: float,
    gen: torch.Generator,
) -> torch.Tensor:
    """Random brightness, contrast, saturation and hue, applied to a random fraction `p` of the batch.

    torchvision shuffles the order of the four ops per call; a fixed order keeps this one batched.
    Hue turns the chroma plane in YIQ space, a close and cheap stand-in for a shift in HSV space.
    """
    b, dev, dt = images.shape[0], images.device, images.dtype
    apply = _uniform(b, 0, 1, gen) < p
    factors = [_uniform(b, 1 - s, 1 + s, gen) for s in (brightness, contrast, saturation)]
    angle = _uniform(b, -hue, hue, gen) * 2 * math.pi
    ones = torch.ones(b)
    bright, contr, sat = (torch.where(apply, f.clamp(min=0), ones) for f in factors)
    angle = torch.where(apply, angle, torch.zeros(b))
    bright, contr, sat = (v.to(dev, dt).view(b, 1, 1, 1) for v in (bright, contr, sat))

    x = (images * bright).clamp(0, 1)
    mean_gray = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean_gray) * contr + mean_gray).clamp(0, 1)
    gray = _gray(x)
    x = ((x - gray) * sat + gray).clamp(0, 1)
    return _rotate_hue(x, angle.to(dev, dt)).clamp(0, 1)


def random_grayscale(images: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    b = images.shape[0]
    pick = (_uniform(b, 0, 1, gen) < p).to(images.device).view(b, 1, 1, 1)
    return torch.where(pick, _gray(images).expand_as(images), images)


def gaussian_blur(images: torch.Tensor, sigma: tuple[float, float], p: float, gen: torch.Generator) -> torch.Tensor:
    """Blur a random fraction `p` of the batch with a per-image sigma (given for 224 px, scaled to this size).

    A separable kernel per image, run as one grouped convolution over the whole batch.
    """
    b, c, h, w = images.shape
    scale = min(h, w) / 224
    sig = _uniform(b, sigma[0] * scale, sigma[1] * scale, gen)
    blur = _uniform(b, 0, 1, gen) < p
    radius = max(1, math.ceil(3 * sigma[1] * scale))
    radius = min(radius, (min(h, w) - 1) // 2)  # reflect padding needs a kernel smaller than the image
    if radius < 1:
        return images
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(taps[None] ** 2) / (2 * sig[:, None] ** 2))
    identity = (taps == 0).float().expand(b, -1)
    kernel = torch.where(blur[:, None], kernel, identity)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).to(images.device, images.dtype)
    kernel = kernel.repeat_interleave(c, dim=0)  # one kernel per (image, channel) group
    k = 2 * radius + 1
    x = images.reshape(1, b * c, h, w)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), kernel.view(b * c, 1, 1, k), groups=b * c)
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), kernel.view(b * c, 1, k, 1), groups=b * c)
    return x.view(b, c, h, w).clamp(0, 1)  # float rounding can step just past 1


def _gray(images: torch.Tensor) -> torch.Tensor:
    return (images * _LUMA.to(images.device, images.dtype).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)


def _rotate_hue(images: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    b = images.shape[0]
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros(b, 3, 3, device=images.device, dtype=images.dtype)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2] = cos, -sin
    rot[:, 2, 1], rot[:, 2, 2] = sin, cos
    to_yiq = _RGB_TO_YIQ.to(images.device, images.dtype)
    to_rgb = _YIQ_TO_RGB.to(images.device, images.dtype)
    mix = to_rgb @ rot @ to_yiq  # (B, 3, 3): the whole hue turn as one colour matrix per image
    return torch.einsum("bij,bjhw->bihw", mix, images)


class _Share:
    """A generator standing for a whole batch of `total` images, of which the caller holds rows start.."""

    def __init__(self, gen: torch.Generator, start: int, total: int):
        self.gen, self.start, self.total = gen, start, total


def _uniform(n: int, low: float, high: float, gen: torch.Generator | _Share) -> torch.Tensor:
    if isinstance(gen, _Share):
        return (torch.rand(gen.total, generator=gen.gen) * (high - low) + low)[gen.start : gen.start + n]
    return torch.rand(n, generator=gen) * (high - low) + low


def _check_batch(images: torch.Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected a float batch (B, 3, H, W), got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"expected float images in [0, 1], got dtype {images.dtype}")
