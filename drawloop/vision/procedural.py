"""Procedural baseline datasets (Baradad et al. 2021, "Learning to See by Looking at Noise"), made in torch.

    from drawloop.vision.procedural import generate, KINDS
    images = generate("deadleaves", n=5000, size=32, seed=0)   # uint8 (5000, 3, 32, 32)

Three kinds, each a stand-in for a family in the literature, drawn at the same size and count as the
LLM drawings so every comparison has an equal budget:

- deadleaves: the "dead leaves, mixed shapes" model: circles, rotated rectangles and triangles of
  uniform random colour, radii from a power law p(r) ~ r^-3, stacked until the canvas is covered.
- shapes:     a few (1-6) random solid shapes and strokes over a random noise background.
- spectral:   colour noise with a random 1/f^alpha amplitude spectrum (alpha 0.5-2.5, random anisotropy),
  channels mixed by a random colour matrix.

Images are made in fixed-size chunks from one seeded generator, so `generate(k, n, s, seed)[:m]` equals
`generate(k, m, s, seed)`: a larger budget only adds images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CHUNK = 64


def generate(kind: str, n: int, size: int, seed: int = 0) -> torch.Tensor:
    """`n` images of `kind` at `size` x `size`, as uint8 (n, 3, size, size)."""
    if kind not in KINDS:
        raise ValueError(f"unknown procedural kind {kind!r}; choose one of {', '.join(KINDS)}")
    if n < 1 or size < 8:
        raise ValueError(f"need n >= 1 and size >= 8, got n={n}, size={size}")
    gen = torch.Generator().manual_seed(seed)
    chunks = [KINDS[kind](CHUNK, size, gen) for _ in range(math.ceil(n / CHUNK))]
    images = torch.cat(chunks)[:n]
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


def dead_leaves(b: int, size: int, gen: torch.Generator, leaves: int = 128) -> torch.Tensor:
    # Power-law radii by inverse CDF; the many small leaves are what give dead leaves their texture.
    r_min, r_max, alpha = max(1.0, 0.04 * size), 0.7 * size, 3.0
    u = torch.rand(b, leaves, generator=gen)
    lo, hi = r_min ** (1 - alpha), r_max ** (1 - alpha)
    radius = (lo + u * (hi - lo)) ** (1 / (1 - alpha))
    centre = torch.rand(b, leaves, 2, generator=gen) * size
    angle = torch.rand(b, leaves, generator=gen) * 2 * math.pi
    kind = torch.randint(0, 3, (b, leaves), generator=gen)
    colour = torch.rand(b, leaves, 3, generator=gen)
    masks = _shape_masks(size, centre, radius, angle, kind)
    return _paint(torch.rand(b, 3, 1, 1, generator=gen).expand(b, 3, size, size), masks, colour)


def shapes_on_noise(b: int, size: int, gen: torch.Generator, max_shapes: int = 6) -> torch.Tensor:
    background = _noise_background(b, size, gen)
    n_shapes = torch.randint(1, max_shapes + 1, (b,), generator=gen)
    radius = (0.1 + 0.3 * torch.rand(b, max_shapes, generator=gen)) * size
    centre = (0.15 + 0.7 * torch.rand(b, max_shapes, 2, generator=gen)) * size
    angle = torch.rand(b, max_shapes, generator=gen) * 2 * math.pi
    kind = torch.randint(0, 4, (b, max_shapes), generator=gen)  # 3 = a thick stroke
    colour = torch.rand(b, max_shapes, 3, generator=gen)
    masks = _shape_masks(size, centre, radius, angle, kind)
    present = torch.arange(max_shapes)[None] < n_shapes[:, None]
    return _paint(background, masks & present[:, :, None, None], colour)


def spectral_noise(b: int, size: int, gen: torch.Generator) -> torch.Tensor:
    alpha = 0.5 + 2.0 * torch.rand(b, 1, 1, 1, generator=gen)
    stretch = torch.exp((torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 1.4)  # anisotropy 0.5x-2x
    fy = torch.fft.fftfreq(size)[:, None]
    fx = torch.fft.rfftfreq(size)[None, :]
    freq = torch.sqrt((fx * stretch) ** 2 + (fy / stretch) ** 2).clamp(min=1.0 / size)
    amplitude = freq ** (-alpha)
    white = torch.randn(b, 3, size, size, generator=gen)
    field = torch.fft.irfft2(torch.fft.rfft2(white) * amplitude, s=(size, size))
    field = (field - field.mean(dim=(2, 3), keepdim=True)) / field.std(dim=(2, 3), keepdim=True)
    mix = torch.randn(b, 3, 3, generator=gen) * 0.15  # correlated channels, like real colour
    base = 0.2 + 0.6 * torch.rand(b, 3, 1, 1, generator=gen)
    return base + torch.einsum("bij,bjhw->bihw", mix, field)


KINDS = {"deadleaves": dead_leaves, "shapes": shapes_on_noise, "spectral": spectral_noise}


def _shape_masks(
    size: int, centre: torch.Tensor, radius: torch.Tensor, angle: torch.Tensor, kind: torch.Tensor
) -> torch.Tensor:
    """Boolean masks (B, K, H, W): 0 circle, 1 rotated rectangle, 2 triangle, 3 thick stroke."""
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    dx = coords[None, None, None, :] - centre[..., 0, None, None]
    dy = coords[None, None, :, None] - centre[..., 1, None, None]
    cos, sin = torch.cos(angle)[..., None, None], torch.sin(angle)[..., None, None]
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy  # pixel offsets in each shape's own frame
    r = radius[..., None, None]
    circle = dx**2 + dy**2 <= r**2
    rectangle = (u.abs() <= r * 0.9) & (v.abs() <= r * 0.6)
    # An equilateral triangle is where all three inward half-planes agree.
    triangle = torch.ones_like(circle)
    for k in range(3):
        t = 2 * math.pi * k / 3
        triangle &= (math.cos(t) * u + math.sin(t) * v) <= r * 0.5
    stroke = (u.abs() <= r) & (v.abs() <= torch.clamp(r * 0.08, min=0.75))
    k = kind[..., None, None]
    return torch.where(k == 0, circle, torch.where(k == 1, rectangle, torch.where(k == 2, triangle, stroke)))


def _paint(background: torch.Tensor, masks: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """Painter's algorithm in one shot: each pixel takes the colour of the last shape covering it."""
    b, k = masks.shape[:2]
    order = torch.arange(1, k + 1).view(1, k, 1, 1)
    top = (masks * order).amax(dim=1)  # (B, H, W): 0 = no shape, else 1-based shape index
    picked = torch.gather(colour, 1, (top.clamp(min=1) - 1).flatten(1)[..., None].expand(-1, -1, 3))
    picked = picked.view(b, *top.shape[1:], 3).permute(0, 3, 1, 2)
    return torch.where((top > 0)[:, None], picked, background)


def _noise_background(b: int, size: int, gen: torch.Generator) -> torch.Tensor:
    # Uniform noise on a random coarse grid per image, upsampled (blotchy to fine), plus pixel grain.
    grids = [g for g in (2, 4, 8, 16) if g <= size // 2]
    layers = [
        F.interpolate(torch.rand(b, 3, g, g, generator=gen), size=(size, size), mode="bilinear", align_corners=False)
        for g in grids
    ]
    pick = torch.randint(0, len(grids), (b,), generator=gen)
    smooth = torch.stack(layers, dim=1)[torch.arange(b), pick]
    grain = torch.rand(b, 1, 1, 1, generator=gen) * 0.3 * (torch.rand(b, 3, size, size, generator=gen) - 0.5)
    return (smooth + grain).clamp(0, 1)
