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
from drawloop.concepts.shapes import shape_spec
from drawloop.llm.chat import ChatLLM, LLMError, degenerate_repetition
from drawloop.state import Attempt

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|$)", re.S)
_SVG_TAG = re.compile(r"<(/)?svg\b[^<>]*?(/)?>", re.I)       # no nested quantifiers: linear on any answer
_THINKING_OPEN = re.compile(r"<(?:think|thinking|reasoning)>", re.I)
_THINKING_CLOSE = re.compile(r"</(?:think|thinking|reasoning)>", re.I)
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
    """The drawing in an answer, fenced or not, with thinking and text around it dropped. Of several
    drawings ("a first version ... and an improved one") the last complete one; failing that, the
    first, truncated, one, repaired."""
    answer = set_aside_thinking(text)
    fenced = [body for _, body in _FENCE.findall(answer) if "<svg" in body]
    for source in ("\n".join(fenced), answer):   # fences first: prose may mention "<svg>" in passing
        complete, truncated = _svg_spans(source)
        if complete:
            return repair_svg(complete[-1])
        if truncated:
            return repair_svg(truncated)
    if _THINKING_OPEN.search(text) and not _THINKING_CLOSE.search(text):
        raise NoCodeError("the answer ended while the model was still thinking (no <svg> after it)")
    raise NoCodeError("the answer contained no <svg> element")


def set_aside_thinking(text: str) -> str:
    """What follows the model's thinking. Reasoning models think aloud first and name tags while
    they do ("a <circle> for the head, then </svg>"); only the answer after it is the drawing. Some
    templates send the opening <think> in the prompt, so a closing tag alone also counts."""
    closings = list(_THINKING_CLOSE.finditer(text))
    if closings:
        return text[closings[-1].end():]
    opening = _THINKING_OPEN.search(text)
    return text[:opening.start()] if opening else text


def _svg_spans(text: str) -> tuple[list[str], str | None]:
    """Top-level <svg>...</svg> spans (nested <svg> elements stay inside their parent), and the
    unfinished one the answer ended in, if any."""
    complete, depth, start = [], 0, 0
    for match in _SVG_TAG.finditer(text):
        closing, self_closing = match.group(1), match.group(2)
        if closing:
            if depth:
                depth -= 1
                if depth == 0:
                    complete.append(text[start:match.end()])
        elif not self_closing:
            if depth == 0:
                start = match.start()
            depth += 1
        elif depth == 0:
            complete.append(match.group(0))
    return complete, (text[start:] if depth else None)


def finished_drawing(text: str, grace: int = 160) -> bool:
    """Stream guard: a complete drawing has been written (after any thinking) and `grace`
    characters have passed without another one starting, so the rest is prose. This is the
    server-side stop at "</svg>", moved here where it can tell thinking and second versions apart."""
    answer = set_aside_thinking(text)
    end = answer.rfind("</svg>")
    if end < 0 or _svg_spans(answer)[1] is not None:
        return False
    return len(answer) - end - len("</svg>") >= grace


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


# Constructs under which one line can draw in two places (transforms, reuse, clip and mask
# contexts); where any of them appears, a verbatim copy of earlier lines may be deliberate, so it is
# never cut. A plain <defs> of gradients is not one: exempting it let 7 of 12 capped real loops run
# to the token cap (bench/loop_guard.py).
_CONTEXTUAL = re.compile(r"transform|<(?:use|clipPath|mask|pattern|symbol|marker|svg[^>]*<svg)\b", re.I)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_VIEWBOX = re.compile(r"""viewBox\s*=\s*["']\s*(-?[\d.]+)[\s,]+(-?[\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)""")


def drawing_loop(text: str) -> bool:
    """Stream guard for the drawer: true when the model is looping, so the rest of its answer
    would draw nothing new, and generation can stop (minutes per draft with a small local model)."""
    return (degenerate_repetition(text) or long_unit_loop(text) or copied_block(text) or off_canvas_walk(text)
            or counted_off_canvas(text))


def long_unit_loop(text: str) -> bool:
    """A run of path commands of 61-120 characters copied five times over at the very end
    ("zm0 48c0 33.33 33.33 0 66.67 0 ... V256H0V0H256V256" again and again, in one d attribute)."""
    return degenerate_repetition(text, window=960, min_span=360, min_repeats=5, max_period=120)


def svg_answer_done(text: str) -> bool:
    """The drawer's stream guard: a finished drawing, or a loop that would draw nothing new."""
    return finished_drawing(text) or drawing_loop(text)


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


def counted_off_canvas(text: str, run: int = 8, outside: int = 3) -> bool:
    """Elements of one shape whose coordinate counts up by a fixed step ("x=20", "x=30", ... one
    rect after another) and has left the canvas for the last `outside` of them: whatever follows
    is drawn where nobody sees it. (Seen in a real demo: a bicycle's 'spokes' counting to x=410.)"""
    match = _VIEWBOX.search(text)
    if not match:
        return False
    x, y, width, height = (float(v) for v in match.groups())
    lines = [line.strip() for line in text[:text.rfind("\n") + 1].splitlines() if line.strip()][-run:]
    if len(lines) < run or not all(line.startswith("<") and not line.startswith(("</", "<!")) for line in lines):
        return False
    if len({_NUMBER.sub("#", line) for line in lines}) != 1:
        return False
    rows = [[float(n) for n in _NUMBER.findall(line)] for line in lines]
    low, high = min(x, y) - 0.1 * max(width, height), max(x + width, y + height) + 0.1 * max(width, height)
    for column in zip(*rows):
        steps = {round(b - a, 6) for a, b in zip(column, column[1:])}
        if len(steps) == 1 and steps != {0} and all(not low <= v <= high for v in column[-outside:]):
            return True
    return False


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

    def __init__(self, llm: ChatLLM, size: int = 256, feedback: str = "critic", context_chars: int = 7000,
                 shape_llm: ChatLLM | None = None):
        self.llm = llm
        self.shape_llm = shape_llm   # the same model with a smaller token cap, for concepts naming plain shapes
        self.size = size
        self.feedback = feedback
        # About 2,300 tokens of earlier turns: with a 1,200-token answer it fits a 4k llama.cpp slot.
        self.context_chars = context_chars

    def messages(self, concept: str, language: str, history: list[Attempt]) -> list[tuple[str, str]]:
        """A first draft is the system prompt and the task. A revision continues the conversation
        that produced the attempt it revises (its `parent` links back to the first draft): each
        earlier answer verbatim as an assistant turn, each followed by the feedback it got. The server
        has just decoded every one of those tokens, so only the last feedback is new prompt work.
        A lineage longer than `context_chars` keeps its most recent links."""
        turns = [("system", prompts.system_prompt(language, self.size)),
                 ("user", prompts.FIRST_DRAFT.format(concept=concept))]
        base = _revision_base(history)
        if base is None:
            return turns
        for attempt in _lineage(history, base, self.context_chars):
            turns += [("assistant", attempt.get("raw") or attempt["code"]), ("user", self.feedback_for(concept, attempt))]
        return turns

    def feedback_for(self, concept: str, attempt: Attempt) -> str:
        if self.feedback == "plain":
            return prompts.PLAIN_REVISION.format(concept=concept)
        return prompts.REVISION.format(concept=concept, observations=observations(concept, attempt))

    def draw(self, concept: str, language: str, history: list[Attempt], seed: int | None = None) -> Draft:
        kwargs = {"seed": seed} if seed is not None else {}
        try:
            llm = self.shape_llm if self.shape_llm is not None and shape_spec(concept) else self.llm
            answer = llm.complete(self.messages(concept, language, history),
                                       guard=svg_answer_done if language == "svg" else degenerate_repetition,
                                       **kwargs)
        except LLMError as exc:
            return Draft(code="", error=str(exc))
        text = answer.text
        if answer.cut_short and language == "svg" and drawing_loop(text):
            # stopped inside a copy of an earlier element: drop the half-written copy, which
            # repair would otherwise close with default (black) paint
            text = text[:text.rfind(">") + 1]
        try:
            code = extract_code(text, language)
        except NoCodeError as exc:
            return Draft(code="", raw=answer.text, error=str(exc), usage=answer.usage())
        return Draft(code=code, raw=answer.text, usage=answer.usage())


def _revision_base(history: list[Attempt]) -> Attempt | None:
    """Revise the latest attempt that has code; a model failure leaves nothing to revise."""
    for attempt in reversed(history):
        if attempt.get("code"):
            return attempt
    return None


def _lineage(history: list[Attempt], base: Attempt, max_chars: int) -> list[Attempt]:
    """`base` and the attempts it was revised from, oldest first, while their answers fit in
    `max_chars` (base always). A link without code (a failed draft) ends the lineage."""
    by_iteration = {a.get("iteration"): a for a in history}
    chain, size = [base], len(base.get("raw") or base.get("code") or "")
    parent = by_iteration.get(base.get("parent"))
    while parent is not None and parent.get("code") and parent not in chain:
        size += len(parent.get("raw") or parent["code"])
        if size > max_chars:
            break
        chain.insert(0, parent)
        parent = by_iteration.get(parent.get("parent"))
    return chain


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
