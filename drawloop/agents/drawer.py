"""The drawer: an LLM writes drawing code, then rewrites it from feedback.

    drawer = Drawer(models.chat(max_tokens=1200), size=256)
    draft = drawer.draw("a red apple", "svg", history=[])            # first draft
    draft = drawer.draw("a red apple", "svg", history=attempts)      # revision of the last attempt
    draft.code, draft.error, draft.usage

Models wrap code in Markdown fences, chat around it, stop mid-tag at the token cap, forget
`xmlns`. `extract_code` pulls the code out and `repair_svg` fixes what is safely fixable, so a
failure means the model really gave no drawing.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from drawloop import prompts
from drawloop.agents.base import Draft
from drawloop.llm import ChatLLM, LLMError, degenerate_repetition
from drawloop.state import Attempt

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|$)", re.S)
_TAG = re.compile(r"<(/?)([A-Za-z][\w:.-]*)((?:[^>\"']|\"[^\"]*\"|'[^']*')*?)(/?)>", re.S)


class NoCodeError(ValueError):
    """The model's answer contains no drawing code."""


def extract_code(text: str, language: str = "svg") -> str:
    if language == "svg":
        return extract_svg(text)
    if language == "python":
        return extract_python(text)
    raise ValueError(f"unknown drawing language {language!r}")


def extract_svg(text: str) -> str:
    """The first <svg>...</svg> in an answer, fenced or not, with text around it dropped."""
    candidates = [body for _, body in _FENCE.findall(text) if "<svg" in body] + [text]
    for candidate in candidates:
        start = candidate.find("<svg")
        if start < 0:
            continue
        end = candidate.find("</svg>", start)
        body = candidate[start:end + len("</svg>")] if end >= 0 else candidate[start:]
        return repair_svg(body)
    raise NoCodeError("the answer contained no <svg> element")


def extract_python(text: str) -> str:
    fenced = [body for lang, body in _FENCE.findall(text) if lang.lower() in ("python", "py", "")]
    code = max(fenced, key=len) if fenced else text
    code = code.strip()
    if not re.search(r"\b(import|plt\.|ax\.|Image)\b", code):
        raise NoCodeError("the answer contained no Python drawing code")
    return code + "\n"


def _well_formed(svg: str) -> bool:
    try:
        ET.fromstring(svg)
    except ET.ParseError:
        return False
    return True


# Constructs under which one line can draw in two places (transforms, reuse, definitions); where
# any of them appears, a verbatim copy of earlier lines may be deliberate, so it is never cut.
_CONTEXTUAL = re.compile(r"transform|<(?:use|defs|clipPath|mask|pattern|symbol|marker|svg[^>]*<svg)\b", re.I)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_VIEWBOX = re.compile(r"""viewBox\s*=\s*["']\s*(-?[\d.]+)[\s,]+(-?[\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)""")


def drawing_loop(text: str) -> bool:
    """Stream guard for the drawer: true when the model is looping, so the rest of its answer
    would draw nothing new, and generation can stop (minutes per draft with a small local model)."""
    return degenerate_repetition(text) or copied_block(text) or off_canvas_walk(text)


def copied_block(text: str, lines_needed: int = 4, min_chars: int = 120) -> bool:
    """The last few complete lines are element lines that repeat, verbatim, a block written earlier
    (the whiskers again, the same circle twelve times). Without transforms or reuse an identical
    element in the same place draws nothing new."""
    lines = [line.strip() for line in text[:text.rfind("\n") + 1].splitlines() if line.strip()]
    if len(lines) < 2 * lines_needed or _CONTEXTUAL.search(text):
        return False
    tail = lines[-lines_needed:]
    if sum(map(len, tail)) < min_chars or not all(line.startswith("<") and not line.startswith(("</", "<!"))
                                                  for line in tail):
        return False
    earlier = lines[:-lines_needed]
    return any(earlier[i:i + lines_needed] == tail for i in range(len(earlier) - lines_needed + 1))


def off_canvas_walk(text: str, window: int = 480) -> bool:
    """Path commands that repeat in shape while their numbers march off the canvas
    ("C240 280C240 288C240 296..."): the model is counting, not drawing."""
    match = _VIEWBOX.search(text)
    if not match:
        return False
    x, y, width, height = (float(v) for v in match.groups())
    bound = max(abs(x), abs(y)) + 2 * max(width, height)
    tail = text[-window:]
    if sum(abs(float(n)) > bound for n in _NUMBER.findall(tail[-120:])) < 4:
        return False
    return degenerate_repetition(_NUMBER.sub("#", tail), window=window, min_span=60, min_repeats=8)


def trim_repetition(text: str, max_period: int = 60, min_repeats: int = 4) -> str:
    """Collapse a unit repeated at the very end ("L256 256L256 256L256 256") to one copy."""
    for period in range(1, max_period + 1):
        unit = text[-period:]
        repeats = 1
        while text[-(repeats + 1) * period:-repeats * period] == unit and (repeats + 1) * period <= len(text):
            repeats += 1
        if repeats >= min_repeats and repeats * period >= 24:
            return text[:len(text) - (repeats - 1) * period]
    return text


def _finish_open_tag(svg: str) -> str:
    """An answer cut inside a start tag (usually a long path's d attribute): close the
    attribute and the tag, so the shapes drawn so far survive."""
    lt, gt = svg.rfind("<"), svg.rfind(">")
    if lt <= gt or svg.startswith(("</", "<!", "<?"), lt):
        return svg
    fragment = svg[lt:]
    if not re.match(r"<[A-Za-z][\w:.-]*\s", fragment):
        return svg[:lt]
    if fragment.count('"') % 2:
        fragment = re.sub(r"\s*[A-Za-z]?\s*[-\d.,\s]*$", "", fragment) + '"'  # drop a half-written command
    elif fragment.count("'") % 2:
        fragment += "'"
    elif re.search(r"[\w:-]+\s*=?\s*$", fragment):
        fragment = re.sub(r"\s*[\w:-]+\s*=?\s*$", "", fragment)  # a dangling attribute name
    return svg[:lt] + fragment.rstrip() + "/>"


def _close_open_tags(svg: str) -> str:
    """Finish a truncated answer: keep what was drawn, close whatever is still open."""
    svg = _finish_open_tag(trim_repetition(svg))
    last = svg.rfind(">")
    svg = svg[:last + 1] if last >= 0 else svg
    stack: list[str] = []
    for closing, name, _attrs, self_closing in _TAG.findall(svg):
        if self_closing:
            continue
        if closing:
            if name in stack:
                while stack and stack.pop() != name:
                    pass
        else:
            stack.append(name)
    return svg + "".join(f"</{name}>" for name in reversed(stack))


def repair_svg(svg: str) -> str:
    """Fix what models always get wrong: namespaces, truncation, a viewBox for scaling."""
    svg = svg.strip()
    svg = re.sub(r"<!DOCTYPE[^\[>]*>", "", svg)  # a plain external DOCTYPE is noise; internal subsets stay (and get refused)
    opening = re.match(r"<svg\b[^>]*>", svg, re.S)
    if opening:
        tag = opening.group(0)
        fixed = tag
        if "xmlns=" not in fixed:
            fixed = fixed.replace("<svg", f'<svg xmlns="{SVG_NS}"', 1)
        if "xlink:" in svg and "xmlns:xlink" not in fixed:
            fixed = fixed.replace("<svg", f'<svg xmlns:xlink="{XLINK_NS}"', 1)
        if "viewBox" not in fixed:
            width = re.search(r'\bwidth="([\d.]+)(?:px)?"', fixed)
            height = re.search(r'\bheight="([\d.]+)(?:px)?"', fixed)
            if width and height:
                fixed = fixed.replace("<svg", f'<svg viewBox="0 0 {width.group(1)} {height.group(1)}"', 1)
        svg = fixed + svg[len(tag):]
    if not svg.endswith("</svg>") or not _well_formed(svg):
        closed = _close_open_tags(svg)
        if _well_formed(closed):
            svg = closed
    return svg


class Drawer:
    """Writes and rewrites drawing code with a chat model."""

    def __init__(self, llm: ChatLLM, size: int = 256, feedback: str = "critic"):
        self.llm = llm
        self.size = size
        self.feedback = feedback

    def messages(self, concept: str, language: str, history: list[Attempt]) -> list[tuple[str, str]]:
        system = prompts.system_prompt(language, self.size)
        base = _revision_base(history)
        if base is None:
            return [("system", system), ("user", prompts.FIRST_DRAFT.format(concept=concept))]
        if self.feedback == "plain":
            user = prompts.PLAIN_REVISION.format(concept=concept, language=language, code=base["code"])
        else:
            user = prompts.REVISION.format(concept=concept, language=language, code=base["code"],
                                           observations=observations(concept, base))
        return [("system", system), ("user", user)]

    def draw(self, concept: str, language: str, history: list[Attempt], seed: int | None = None) -> Draft:
        stop = ["</svg>"] if language == "svg" else None
        kwargs = {"seed": seed} if seed is not None else {}
        try:
            answer = self.llm.complete(self.messages(concept, language, history), stop=stop,
                                       guard=drawing_loop if language == "svg" else degenerate_repetition,
                                       **kwargs)
        except LLMError as exc:
            return Draft(code="", error=str(exc))
        try:
            code = extract_code(answer.text, language)
        except NoCodeError as exc:
            return Draft(code="", raw=answer.text, error=str(exc), usage=answer.usage())
        return Draft(code=code, raw=answer.text, usage=answer.usage())


def _revision_base(history: list[Attempt]) -> Attempt | None:
    """Revise the latest attempt that has code; a model failure leaves nothing to revise."""
    for attempt in reversed(history):
        if attempt.get("code"):
            return attempt
    return None


def observations(concept: str, attempt: Attempt) -> str:
    """What the drawer is told about its previous attempt."""
    lines = []
    if attempt.get("render_error"):
        lines.append(f"The code failed to render: {attempt['render_error']}. Fix that first.")
    recognition = attempt.get("recognition") or {}
    if recognition.get("label"):
        if recognition.get("correct"):
            lines.append(f'A viewer who read only the code correctly recognized it as "{concept}".')
        else:
            lines.append(f'A viewer who read only the code thought it shows "{recognition["label"]}", '
                         f'not "{concept}". Make the defining features of {concept} unmistakable.')
    critique = attempt.get("critique") or {}
    if critique.get("score") is not None and not attempt.get("render_error"):
        lines.append(f"Critic's score: {critique['score']:.2f} out of 1.")
    if critique.get("feedback") and not attempt.get("render_error"):
        lines.append("Critic's feedback:\n" + critique["feedback"])
    return "\n".join(lines) or "Make the drawing clearer and more detailed."
