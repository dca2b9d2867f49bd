"""Agents that look at the pixels: a gallery kNN recognizer and four critic scorers.

    from drawloop.agents.pixel import (PixelRecognizer, ConceptScorer, StructureScorer,
                                       VLMCriticScorer, ClipScorer)
    recognizer = PixelRecognizer()                  # kNN over the human-drawn gallery (built lazily)
    critic = Critic([(ConceptScorer(), 1.0), (StructureScorer(), 1.0), (RenderSanityScorer(), 1.0)])
    vlm = VLMCriticScorer.from_model("openai:gpt-4o-mini")            # any OpenAI-compatible image model
    vlm = VLMCriticScorer.from_model("openai:qwen2-vl", base_url="http://127.0.0.1:8000/v1")
    clip = ClipScorer("/models/ViT-B-32.pt", model_name="ViT-B-32")    # only with a local checkpoint

What each one measures, and how far to trust it:
  PixelRecognizer  which of drawing.choices its gallery references resemble most (z-scored against
                   other concepts, see vision/gallery.py); with no choices, a kNN vote over labels.
  ConceptScorer    how far the drawing's similarity to the concept's references stands above its
                   similarity to other concepts. ImageNet features: colour and silhouette count a
                   lot, so a red disc earns some "apple". Never use it alone.
  StructureScorer  what a lone primitive cannot show: filled parts, colours, elements, an ordered
                   (symmetric, uncluttered) layout. Knows nothing about the concept; dense
                   multi-colour scribbles can still fool it (measured in tests/test_pixel.py).
  VLMCriticScorer  a vision-language model looks at the PNG and returns a score and fixes.
  ClipScorer       CLIP image-text similarity (open_clip), when the user has a checkpoint file.

Every scorer abstains (returns None) on a drawing that did not render. The gallery (default: all
sources, ~8.6k drawings) is built on first use, minutes the first time on 2 cores, then read
from the cache in seconds; `drawloop gallery build` does it ahead of time with a progress bar.
Pass `gallery=` (a Gallery or a zero-argument factory) to use another one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from drawloop.agents.base import ScoreResult
from drawloop.concepts.shapes import COLOURS, SOLIDS, ShapeSpec, shape_spec
from drawloop.imaging import BLANK_COVERAGE, border_colour, content_mask, is_blank, load_image
from drawloop.state import Drawing, Recognition



# ---------------------------------------------------------------- the shared gallery

_GALLERY: dict[str, Any] = {}
_GALLERY_LOCK = threading.Lock()


def shared_gallery(**build_options):
    """One gallery per process and option set (building it is minutes the first time, then cached)."""
    from drawloop.vision.gallery import build_gallery

    key = json.dumps(build_options, sort_keys=True, default=str)
    with _GALLERY_LOCK:
        if key not in _GALLERY:
            _GALLERY[key] = build_gallery(**build_options)
        return _GALLERY[key]


class _UsesGallery:
    """Lazy access to a gallery: an instance, a zero-argument factory, or the shared default."""

    def __init__(self, gallery=None):
        self._gallery_source = gallery

    @property
    def gallery(self):
        source = self._gallery_source
        if source is None:
            self._gallery_source = source = shared_gallery()
        elif callable(source) and not hasattr(source, "concept_scores"):
            self._gallery_source = source = source()
        return source


_VECTORS: "OrderedDict[tuple[str, str], np.ndarray]" = OrderedDict()


def _vector(gallery, drawing: Drawing) -> np.ndarray:
    """The drawing's embedding; the recognizer and the concept scorer share one computation."""
    key = (gallery.embedder.name, hashlib.sha1(drawing.png).hexdigest())
    with _GALLERY_LOCK:
        if key in _VECTORS:
            return _VECTORS[key]
    vector = gallery.embed([drawing.png])[0]
    with _GALLERY_LOCK:
        _VECTORS[key] = vector
        while len(_VECTORS) > 64:
            _VECTORS.popitem(last=False)
    return vector


# ---------------------------------------------------------------- recognizer

class PixelRecognizer(_UsesGallery):
    """Chooses among drawing.choices by gallery similarity (or votes over gallery labels).

    `memory` is an optional VectorIndex of accepted drawings from earlier runs (metadata
    "concept" = the concept text): their similarity counts alongside the gallery's.
    `temperature` turns the choices' z-scores into the reported confidence (softmax(z / T)).
    """

    source = "pixels"

    def __init__(self, gallery=None, k: int = 10, memory=None, temperature: float = 1.0):
        super().__init__(gallery)
        self.k, self.memory, self.temperature = k, memory, temperature

    def recognize(self, drawing: Drawing) -> Recognition:
        choices = list(drawing.choices)
        base: Recognition = {"label": None, "correct": False, "confidence": None, "choices": choices,
                             "source": self.source, "error": None, "usage": {}}
        if not drawing.ok:
            return {**base, "error": drawing.render_error or drawing.draw_error or "nothing rendered"}
        if is_blank(drawing.png):
            return {**base, "error": "the canvas is blank"}
        try:
            vector = _vector(self.gallery, drawing)
            if choices:
                z = self.choice_z(vector, choices)
                probs = _softmax(z / self.temperature)
                best = int(np.argmax(z))
                label, confidence = choices[best], float(probs[best])
            else:
                label, confidence = self.vote(vector)
        except Exception as exc:  # a recognizer records failures, it never breaks the loop
            return {**base, "error": f"pixel recognizer failed: {type(exc).__name__}: {exc}"[:300]}
        return {**base, "label": label, "confidence": round(confidence, 4),
                "correct": _same(label, drawing.concept)}

    def choice_z(self, vector: np.ndarray, choices: list[str]) -> np.ndarray:
        scores = self.gallery.concept_scores(vector[None, :], choices)
        z = scores.z[0]
        if self.memory is not None and len(self.memory):
            z = np.maximum(z, self._memory_z(vector, choices, scores))
        return z

    def _memory_z(self, vector, choices, scores) -> np.ndarray:
        """z-scores of the choices measured against remembered drawings of each concept."""
        from drawloop.vision.gallery import TOP_MATCHES

        concepts = np.array([str(m.get("concept", "")).lower() for m in self.memory.metas()])
        sims = self.memory.vectors @ vector
        out = np.full(len(choices), -np.inf, dtype=np.float32)
        for j, choice in enumerate(choices):
            mine = np.sort(sims[concepts == choice.lower()])[-TOP_MATCHES:]
            if mine.size:
                out[j] = (mine.mean() - scores.anchor_mean[0, j]) / scores.anchor_std[0, j]
        return out

    def vote(self, vector: np.ndarray) -> tuple[str, float]:
        """Similarity-weighted vote of the k nearest gallery drawings' labels."""
        hits = self.gallery.neighbours(vector[None, :], k=self.k)[0]
        votes: dict[str, float] = {}
        for hit in hits:
            votes[hit.meta["concept"]] = votes.get(hit.meta["concept"], 0.0) + max(hit.score, 0.0)
        label = max(votes, key=votes.get)
        return label, votes[label] / (sum(votes.values()) or 1.0)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def _same(label: str | None, concept: str) -> bool:
    return label is not None and label.strip().lower() == concept.strip().lower()


# ---------------------------------------------------------------- concept scorer

class ConceptScorer(_UsesGallery):
    """Similarity to the concept's gallery references, relative to other concepts.

    score = clip((z - z_zero) / (z_full - z_zero), 0, 1), where z says how many standard deviations
    the drawing's similarity to the concept's references lies above its similarity to the
    gallery's other concepts. Calibration on the default gallery (held-out emoji and Symbola
    drawings, their glyph series removed from the references): a drawing scored against a random
    *other* concept has z > 1.8 only 5% of the time (99%: 2.7), so z_zero = 2 means "no credit
    for a chance match"; its own concept gives a median z of only 1.3 (75%: 2.7), because most
    emoji concepts have few other references. Clear, detailed drawings of well-covered concepts
    reach z = 3-7, hence z_full = 6.
    """

    name = "concept"

    def __init__(self, gallery=None, z_zero: float = 2.0, z_full: float = 6.0, neighbours: int = 3):
        super().__init__(gallery)
        if z_full <= z_zero:
            raise ValueError("z_full must be larger than z_zero")
        self.z_zero, self.z_full, self.neighbours = z_zero, z_full, neighbours

    def score(self, drawing: Drawing) -> ScoreResult | None:
        if not drawing.ok:
            return None
        if is_blank(drawing.png):
            return ScoreResult(0.0, "Nothing is drawn on the canvas yet.", {"z": None})
        gallery = self.gallery
        vector = _vector(gallery, drawing)
        scores = gallery.concept_scores(vector[None, :], [drawing.concept])
        z = float(scores.z[0, 0])
        value = (z - self.z_zero) / (self.z_full - self.z_zero)
        looks_like = [h.meta["concept"] for h in gallery.neighbours(vector[None, :], k=self.neighbours)[0]]
        details = {"z": round(z, 3), "similarity": round(float(scores.raw[0, 0]), 4),
                   "looks_like": looks_like, "references": scores.references[0][:5]}
        if value >= 0.6:
            feedback = ""
        else:
            feedback = (f"To a picture matcher it looks more like {', '.join(dict.fromkeys(looks_like))} than "
                        f"\"{drawing.concept}\": draw the parts and colours that make it unmistakable.")
        return ScoreResult(value, feedback, details)


# ---------------------------------------------------------------- structure scorer

DRAWING_TAGS = re.compile(r"<\s*(path|circle|ellipse|rect|line|polyline|polygon|text|use|image)\b", re.I)


WORK_SIZE = 128             # structure is measured on a 128 x 128 copy: fast, and sizes are comparable


def structure_stats(png: bytes, code: str = "") -> dict[str, float]:
    """Pixel and code statistics of a drawing (pixels measured at WORK_SIZE).

    coverage  fraction of pixels unlike the background (the border's commonest colour)
    bbox      fraction of the canvas inside the content's bounding box
    solidity  fraction of content pixels in filled areas (a morphological opening): lines and
              strokes narrower than ~4% of the canvas are not filled areas
    colours   coarse colours that each fill >= 2% of the filled area and >= 0.2% of the canvas
              (thin strokes and their anti-aliased fringes are not colours)
    parts     connected same-colour filled regions of >= 0.25% of the canvas
    symmetry  the better of left-right and top-bottom mirror overlap (IoU) of the content,
              with ~2% tolerance: objects and primitives are ordered (> 0.5), scribbles are not
    clutter   colour/background boundary pixels per pixel of the content's bounding box: clean
              drawings stay under ~0.25, dense tangles of lines reach 0.3-0.6
    elements  drawing elements in the code (path, circle, rect, ...)
    """
    from PIL import Image

    
    pixels = np.asarray(load_image(png).resize((WORK_SIZE, WORK_SIZE), Image.NEAREST))
    mask = content_mask(pixels, border_colour(pixels))
    stats = {"coverage": float(mask.mean()), "bbox": 0.0, "solidity": 0.0, "colours": 0.0, "parts": 0.0,
             "symmetry": 0.0, "clutter": 0.0, "elements": float(len(DRAWING_TAGS.findall(code or "")))}
    if not mask.any():
        return stats
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    stats["bbox"] = float((rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)) / mask.size
    stats["symmetry"] = _symmetry(mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])
    keys = _coarse_colours(pixels)
    regions = np.where(mask, keys, -1)
    boundary = (regions[1:, :-1] != regions[:-1, :-1]) | (regions[:-1, 1:] != regions[:-1, :-1])
    stats["clutter"] = float(boundary.sum()) / ((rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1))
    solid = _filled_areas(mask) & mask
    stats["solidity"] = float(solid.sum()) / float(mask.sum())
    if not solid.any():
        return stats
    _, counts = np.unique(keys[solid], return_counts=True)
    stats["colours"] = float((counts >= max(0.02 * solid.sum(), 0.002 * mask.size)).sum())
    sizes = _region_sizes(np.where(solid, keys, -1))
    stats["parts"] = float((sizes >= mask.size // 400).sum())
    return stats


def _symmetry(content: np.ndarray, tolerance: int = 2) -> float:
    """max(left-right, top-bottom) IoU of the content with its mirror image, after thickening
    by `tolerance` pixels so thin lines one pixel off still count as matching."""
    thick = _dilate(np.pad(content, tolerance), tolerance)
    scores = [(thick & m).sum() / max((thick | m).sum(), 1) for m in (thick[:, ::-1], thick[::-1])]
    return float(max(scores))


def _filled_areas(mask: np.ndarray, radius: int = 2) -> np.ndarray:
    """Morphological opening: content that a (2r+1)-square fits inside, grown back to its shape.
    Lines narrower than 2r+1 pixels vanish; filled shapes survive whole."""
    return _dilate(_erode(mask, radius), radius)


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    return ~_dilate(~mask, radius)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Max over a (2r+1)-square (outside the image counts as content-free)."""
    h, w = mask.shape
    padded = np.pad(mask, radius, constant_values=False)
    out = np.zeros_like(mask)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out |= padded[dy:dy + h, dx:dx + w]
    return out


def _coarse_colours(pixels: np.ndarray) -> np.ndarray:
    q = pixels.astype(np.int32) // 43      # 6 levels per channel
    return q[..., 0] * 36 + q[..., 1] * 6 + q[..., 2]


def _region_sizes(keys: np.ndarray) -> np.ndarray:
    """Pixel counts of the 4-connected regions of equal key (key -1 is background).

    Label propagation: every pixel takes the smallest label among same-key neighbours, and
    labels (which are pixel indices) jump to their own label's label, so it converges in a few
    dozen vectorised passes even for long thin shapes.
    """
    h, w = keys.shape
    valid = keys >= 0
    big = h * w
    labels = np.where(valid, np.arange(big).reshape(h, w), big)
    while True:
        new = labels.copy()
        for axis, step in ((0, 1), (0, -1), (1, 1), (1, -1)):
            neighbour_labels = np.roll(labels, step, axis=axis)
            same = valid & (np.roll(keys, step, axis=axis) == keys)
            if axis == 0:
                same[0 if step == 1 else -1, :] = False     # no wrap-around
            else:
                same[:, 0 if step == 1 else -1] = False
            new = np.where(same, np.minimum(new, neighbour_labels), new)
        flat = new.ravel()
        flat[valid.ravel()] = flat[flat[valid.ravel()]]       # pointer jumping
        if np.array_equal(new, labels):
            break
        labels = new
    _, sizes = np.unique(labels[valid], return_counts=True)
    return sizes


def _saturate(value: float, full: float) -> float:
    """0 at 0, 1 at `full` and beyond, on a log scale (the 2nd part matters more than the 12th)."""
    return min(1.0, math.log1p(max(value, 0.0)) / math.log1p(full))


class StructureScorer:
    """Rewards what a single primitive or a scribble cannot show: several visible filled parts in
    several colours, drawn with several elements, in an ordered (not random) arrangement.

    Terms, each in [0, 1] (stats from structure_stats):
      parts     filled same-colour regions beyond the first, saturating at 12
      colours   colours beyond the first, saturating at 5
      elements  code elements beyond the first, saturating at 16
      filled    solidity / 0.6: filled shapes rather than loose lines
      order     symmetry / 0.7: scribbles have ~0.2-0.4, objects and primitives > 0.5
    score = gates x ((0.3 parts + 0.2 colours) x filled + 0.15 elements + 0.15 filled + 0.2 order)
    Parts and colours are scaled by `filled`: they are measured on filled areas, and blots where
    scribbled lines cross must not count like a drawing's shapes. Gates: content inside less than
    6% of the canvas is scaled down; clutter above 0.25 (a tangle of lines) loses up to 70% at
    0.45. A blank canvas scores 0.

    Measured on tests/ladders and on scribbles from a generator it was not tuned on: see
    tests/test_pixel.py. Dense multi-colour tangles can still beat a lone outline circle.
    """

    name = "structure"
    WEIGHTS = {"parts": 0.3, "colours": 0.2, "elements": 0.15, "filled": 0.15, "order": 0.2}

    def score(self, drawing: Drawing) -> ScoreResult | None:
        if not drawing.ok:
            return None
        s = structure_stats(drawing.png, drawing.code)
        if s["coverage"] < BLANK_COVERAGE:
            return ScoreResult(0.0, "Nothing is drawn on the canvas yet.", s)
        spec = shape_spec(drawing.concept)
        if spec is not None:
            return self._score_shape(drawing, s, spec)
        filled = min(1.0, s["solidity"] / 0.6)
        terms = {"parts": _saturate(s["parts"] - 1, 11) * filled,
                 "colours": min(1.0, max(0.0, s["colours"] - 1) / 4) * filled,
                 "elements": _saturate(s["elements"] - 1, 15), "filled": filled,
                 "order": min(1.0, s["symmetry"] / 0.7)}
        size_gate = min(1.0, s["bbox"] / 0.06)
        clutter_gate = 1.0 - 0.7 * min(1.0, max(0.0, s["clutter"] - 0.25) / 0.2)
        value = size_gate * clutter_gate * sum(self.WEIGHTS[k] * terms[k] for k in terms)
        notes = []
        if size_gate < 1:
            notes.append("The drawing is tiny; make the subject fill most of the canvas.")
        if clutter_gate < 1:
            notes.append("It is a tangle of lines; draw fewer, cleaner shapes.")
        if terms["parts"] < 0.5:
            notes.append("Show the subject's distinct parts as separate filled shapes.")
        if terms["colours"] < 0.5:
            notes.append("Use the subject's characteristic colours for its different parts.")
        if terms["order"] < 0.6:
            notes.append("The shapes look random; arrange them into a clear, recognisable form.")
        return ScoreResult(value, " ".join(notes), {**s, **{f"t_{k}": round(v, 3) for k, v in terms.items()}})


    def _score_shape(self, drawing: Drawing, s: dict, spec: "ShapeSpec") -> ScoreResult:
        """A named primitive ("a red circle", "three blue squares") is best drawn as exactly that:
        more parts are not better, so busyness is not rewarded. Terms: the count of filled parts
        (or of elements, for outlines and lines) against the count asked for, the named colour's
        share of the content and order (symmetry), all scaled down for content in under 15% of
        the canvas."""
        count = s["parts"] if s["solidity"] >= 0.3 and not spec.outline else s["elements"]
        miss = abs(count - spec.count)
        if spec.noun in SOLIDS and spec.count == 1:
            miss = 0 if 1 <= count <= 4 else miss
        terms = {"count": 1.0 / (1.0 + miss / max(1, spec.count)),
                 "colour": colour_share(drawing.png, spec.colours) if spec.colours else 1.0,
                 "order": min(1.0, s["symmetry"] / 0.7) if spec.count == 1 else 1.0,
                 "size": min(1.0, s["bbox"] / 0.15) ** 0.5}
        weights = {"count": 0.45, "colour": 0.35, "order": 0.2}
        value = terms["size"] * sum(weights[k] * terms[k] for k in weights)   # a speck is no shape
        notes = []
        if terms["count"] < 0.99:
            notes.append(f"Draw exactly {spec.count} {spec.noun}{'s' if spec.count > 1 else ''} and nothing else "
                         f"(the picture shows {count:.0f} separate parts).")
        if terms["colour"] < 0.5:
            notes.append(f"Use {' and '.join(spec.colours)} as the {spec.noun}'s colour.")
        if terms["size"] < 1:
            notes.append("Make the shape larger; it should fill much of the canvas.")
        return ScoreResult(value, " ".join(notes), {**s, **{f"t_{k}": round(v, 3) for k, v in terms.items()}})


def colour_share(png: bytes, colours: tuple[str, ...]) -> float:
    """The share of the content's pixels nearest (of all named colours) to one of `colours`,
    on a scale where 60% or more is full marks."""
    
    pixels = np.asarray(load_image(png).resize((WORK_SIZE, WORK_SIZE)), dtype=np.float32)
    mask = content_mask(pixels.astype(np.uint8), border_colour(pixels.astype(np.uint8)))
    if not mask.any():
        return 0.0
    names = list(COLOURS)
    palette = np.array([COLOURS[n] for n in names], dtype=np.float32)
    nearest = np.argmin(((pixels[mask][:, None, :] - palette[None]) ** 2).sum(-1), axis=1)
    wanted = [i for i, n in enumerate(names) if n in colours or (n == "grey" and "gray" in colours)]
    return min(1.0, float(np.isin(nearest, wanted).mean()) / 0.6)


# ---------------------------------------------------------------- vision-language critic

VLM_PROMPT = """You are judging a drawing made from code. It should show: "{concept}".
Look at the image. Rate how clearly and how well it shows that concept, from 0 (nothing
recognisable) to 10 (unmistakable, detailed, well composed). Then list up to 3 concrete fixes.
Answer with JSON only: {{"score": <0-10>, "feedback": "<fixes>"}}"""


def png_data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def parse_vlm_answer(text: str) -> tuple[float | None, str]:
    """(score in [0, 1] or None, feedback) from JSON, fenced JSON, or 'Score: 7/10 ...' prose."""
    text = (text or "").strip()
    for candidate in re.findall(r"\{.*\}", text, re.S)[:1]:
        try:
            data = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            raw = data.get("score", data.get("rating"))
            try:
                value = float(raw)
            except (TypeError, ValueError):
                continue
            feedback = data.get("feedback") or data.get("fixes") or ""
            if isinstance(feedback, list):
                feedback = "\n".join(f"- {f}" for f in feedback)
            return _to_unit(value, None), str(feedback).strip()
    match = re.search(r"(?:score|rating)\W{0,5}(\d+(?:\.\d+)?)\s*(?:/\s*(\d+))?", text, re.I)
    if not match:
        return None, text[:500]
    scale = float(match.group(2)) if match.group(2) else None
    rest = (text[:match.start()] + text[match.end():]).strip(" \n:-*")
    return _to_unit(float(match.group(1)), scale), rest[:500]


def _to_unit(value: float, scale: float | None) -> float:
    if scale is None:
        scale = 1.0 if value <= 1.0 else 10.0 if value <= 10.0 else 100.0
    return min(1.0, max(0.0, value / (scale or 1.0)))


class VLMCriticScorer:
    """Any chat model with image input (OpenAI or OpenAI-compatible) scores the rendered PNG.

    `llm` is a drawloop.llm.ChatLLM (retries, backoff, usage) or any langchain chat model. A model
    failure makes the scorer abstain; the reason is kept in `last_error`.
    """

    name = "vlm"

    def __init__(self, llm, prompt: str = VLM_PROMPT):
        from drawloop.llm.chat import ChatLLM

        self.llm = llm if isinstance(llm, ChatLLM) else ChatLLM(llm, retries=1, backoff=0.5)
        self.prompt = prompt
        self.last_error: str | None = None

    @classmethod
    def from_model(cls, model: str, base_url: str | None = None, api_key: str | None = None,
                   timeout: float = 60.0, max_tokens: int = 300, retries: int = 2) -> "VLMCriticScorer":
        """'openai:gpt-4o-mini', or 'NAME' / 'openai:NAME' served at base_url (vLLM, Ollama, ...)."""
        from langchain_openai import ChatOpenAI

        from drawloop.llm.chat import ChatLLM

        name = model.split(":", 1)[1] if model.startswith("openai:") else model
        if not name:
            raise ValueError("--critic-model needs a model name, e.g. openai:gpt-4o-mini")
        kwargs: dict[str, Any] = dict(model=name, api_key=api_key or "EMPTY", temperature=0, timeout=timeout,
                                      max_retries=0, max_tokens=max_tokens)
        if base_url:
            kwargs["base_url"] = base_url
        return cls(ChatLLM(ChatOpenAI(**kwargs), retries=retries, name=f"vlm:{name}"))

    def score(self, drawing: Drawing) -> ScoreResult | None:
        from langchain_core.messages import HumanMessage

        from drawloop.llm.chat import LLMError

        if not drawing.ok:
            return None
        message = HumanMessage(content=[
            {"type": "text", "text": self.prompt.format(concept=drawing.concept)},
            {"type": "image_url", "image_url": {"url": png_data_url(drawing.png)}},
        ])
        try:
            answer = self.llm.complete([message])
        except LLMError as exc:
            self.last_error = str(exc)
            return None
        value, feedback = parse_vlm_answer(answer.text)
        if value is None:
            self.last_error = f"no score in the answer: {answer.text[:200]!r}"
            return None
        self.last_error = None
        return ScoreResult(value, feedback, {"raw": answer.text[:500]}, usage=answer.usage())


# ---------------------------------------------------------------- CLIP (optional)

class ClipScorer:
    """CLIP similarity between the drawing and "a drawing of {concept}", relative to the choices
    (or a few generic captions). Needs `open_clip_torch` and a local checkpoint: nothing is ever
    downloaded. Without either it abstains, and `unavailable` says why.
    """

    name = "clip"

    def __init__(self, checkpoint: str | Path | None, model_name: str = "ViT-B-32",
                 loader: Callable[[str, str], tuple[Any, Any, Any]] | None = None):
        self.checkpoint, self.model_name = checkpoint, model_name
        self._loader = loader or _load_open_clip
        self._model = None
        self.unavailable: str | None = None
        if not checkpoint:
            self.unavailable = "no CLIP checkpoint given (pass a local file path)"
        elif not Path(checkpoint).is_file():
            self.unavailable = f"CLIP checkpoint {checkpoint} does not exist"
        elif loader is None:
            try:
                import open_clip  # noqa: F401
            except ImportError:
                self.unavailable = "open_clip is not installed (pip install open_clip_torch)"

    def score(self, drawing: Drawing) -> ScoreResult | None:
        if self.unavailable or not drawing.ok:
            return None
        import torch


        if self._model is None:
            self._model = self._loader(self.model_name, str(self.checkpoint))
        model, preprocess, tokenizer = self._model
        captions = [f"a drawing of {c}" for c in (drawing.choices or [drawing.concept, "nothing", "a scribble"])]
        if f"a drawing of {drawing.concept}" not in captions:
            captions.insert(0, f"a drawing of {drawing.concept}")
        with torch.inference_mode():
            image = preprocess(load_image(drawing.png)).unsqueeze(0)
            image_vec = torch.nn.functional.normalize(model.encode_image(image), dim=-1)
            text_vec = torch.nn.functional.normalize(model.encode_text(tokenizer(captions)), dim=-1)
            probs = (100.0 * image_vec @ text_vec.T).softmax(dim=-1)[0]
        target = captions.index(f"a drawing of {drawing.concept}")
        value = float(probs[target])
        return ScoreResult(value, "" if value > 0.5 else f"CLIP does not see {drawing.concept} clearly.",
                           {"captions": captions, "probs": [round(float(p), 4) for p in probs]})


def _load_open_clip(model_name: str, checkpoint: str):
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=checkpoint)
    return model.eval(), preprocess, open_clip.get_tokenizer(model_name)
