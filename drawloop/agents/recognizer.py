"""The code-reading recognizer: the study's protocol for "can the model see its own drawing?".

    recognizer = CodeRecognizer(models.chat(max_tokens=8, temperature=0))
    rec = recognizer.recognize(Drawing(concept="a cat", code=svg, choices=["a dog", "a cat", ...]))
    rec["label"], rec["correct"]

The LLM sees only the code (never the image) and picks one of the lettered choices: the concept
plus distractors, in a fixed, seeded order. Comments, <title>, <desc>, <metadata> and label
attributes are removed and ids/classes renamed first: models annotate their code ("<!-- front
wheel -->", id="catHead"), and a recognizer that reads the answer off a name measures nothing. Unparseable answers are recorded, not raised.
"""

from __future__ import annotations

import random
import re

from drawloop import prompts
from drawloop.llm.chat import ChatLLM, LLMError, ask_json
from drawloop.state import Drawing, Recognition


def make_choices(concept: str, distractors: list[str], seed: int | None = 0) -> list[str]:
    """The concept plus distractors, shuffled deterministically, without duplicates."""
    options = [concept] + [d for d in dict.fromkeys(distractors) if d.strip().lower() != concept.strip().lower()]
    random.Random(f"{concept}|{seed}").shuffle(options)
    return options


_SVG_HINTS = re.compile(r"<!--.*?-->|<(title|desc|metadata)\b[^>]*>.*?</\1\s*>|<(title|desc|metadata)\b[^>]*/>",
                        re.S | re.I)


# Attributes that only label things for people or editors ("aria-label", "data-name", "inkscape:label").
_LABEL_ATTRIBUTES = re.compile(r"""\s(?:aria-label|data-[\w-]+|inkscape:label|sodipodi:docname)\s*=\s*("[^"]*"|'[^']*')""")
_ID_ATTRIBUTE = re.compile(r"""(\sid\s*=\s*)(["'])([^"']+)\2""")
_CLASS_ATTRIBUTE = re.compile(r"""(\sclass\s*=\s*)(["'])([^"']*)\2""")
_HEX_LIKE = re.compile(r"^[0-9a-fA-F]{3,8}$")     # "#fff" in a style is a colour, not a reference


def strip_hints(code: str, language: str = "svg") -> str:
    """The code without the words a model leaves for humans: comments, titles, labels, and names
    of ids and classes ("catHead", "waterfallGradient"), which become neutral ones (i1, c1) with
    every reference (url(#...), href, CSS selectors) renamed alike, so the picture is unchanged."""
    if language == "svg":
        cleaned = _LABEL_ATTRIBUTES.sub("", _SVG_HINTS.sub("", code))
        return re.sub(r"\n\s*\n", "\n", _neutral_names(cleaned))
    if language == "python":
        return _neutral_python(code)
    return code


def _neutral_python(code: str) -> str:
    """Comments and docstrings dropped, and the names the code itself binds (variables, functions,
    their parameters) renamed v1, v2...; library names (plt.Circle, np.pi) and strings stay.
    Code that does not parse keeps its names and loses only its comments."""
    import ast

    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return _without_comments(code)
    imported = {(a.asname or a.name).split(".")[0] for node in ast.walk(tree)
                if isinstance(node, (ast.Import, ast.ImportFrom)) for a in node.names}
    bound: dict[str, None] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound[node.id] = None
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound[node.name] = None
        elif isinstance(node, ast.arg):
            bound[node.arg] = None
    # The renderer reads a PIL image bound to `image`; self/cls are conventions, not hints.
    names = {old: f"v{n}" for n, old in enumerate((b for b in bound if b not in imported
                                                   and b not in {"image", "self", "cls"}), 1)}

    class Rename(ast.NodeTransformer):
        def visit_Name(self, node):
            node.id = names.get(node.id, node.id)
            return node

        def visit_arg(self, node):
            node.arg = names.get(node.arg, node.arg)
            return self.generic_visit(node)

        def visit_FunctionDef(self, node):
            node.name = names.get(node.name, node.name)
            node.body = _without_docstring(node.body)     # a docstring describes the picture
            return self.generic_visit(node)

        visit_AsyncFunctionDef = visit_FunctionDef

        def visit_ClassDef(self, node):
            node.name = names.get(node.name, node.name)
            return self.generic_visit(node)

        def visit_Call(self, node):
            # Keywords are renamed only in calls to the code's own functions: `radius=` in
            # plt.Circle(...) is matplotlib's name even if the code has a variable `radius`.
            if isinstance(node.func, ast.Name) and node.func.id in names:
                for keyword in node.keywords:
                    keyword.arg = names.get(keyword.arg, keyword.arg)
            return self.generic_visit(node)

        def visit_Global(self, node):
            node.names = [names.get(n, n) for n in node.names]
            return node

        visit_Nonlocal = visit_Global

    tree.body = _without_docstring(tree.body)
    try:
        return ast.unparse(Rename().visit(tree))
    except Exception:  # unparse of odd trees: fall back to comment stripping, never fail a recognition
        return _without_comments(code)


def _without_docstring(body: list) -> list:
    import ast

    first = body[0] if body else None
    if (len(body) > 1 and isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        return body[1:]
    return body


def _without_comments(code: str) -> str:
    """Python code minus its comments, also where it does not parse (tokenizing needs less)."""
    import io
    import tokenize

    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(code).readline) if t.type != tokenize.COMMENT]
        return tokenize.untokenize(tokens)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return re.sub(r"(?m)^\s*#.*$", "", code)


def _neutral_names(svg: str) -> str:
    ids = list(dict.fromkeys(m.group(3) for m in _ID_ATTRIBUTE.finditer(svg) if not _HEX_LIKE.match(m.group(3))))
    classes = list(dict.fromkeys(c for m in _CLASS_ATTRIBUTE.finditer(svg) for c in m.group(3).split()))
    id_map = {old: f"i{n}" for n, old in enumerate(ids, 1)}
    class_map = {old: f"c{n}" for n, old in enumerate(classes, 1)}
    if id_map:
        svg = _ID_ATTRIBUTE.sub(lambda m: m.group(1) + m.group(2) + id_map.get(m.group(3), m.group(3)) + m.group(2), svg)
        pattern = re.compile(r"#(" + "|".join(map(re.escape, sorted(id_map, key=len, reverse=True))) + r")(?![\w-])")
        svg = pattern.sub(lambda m: "#" + id_map[m.group(1)], svg)
    if class_map:
        svg = _CLASS_ATTRIBUTE.sub(lambda m: m.group(1) + m.group(2) + " ".join(class_map[c] for c in m.group(3).split())
                                   + m.group(2), svg)
        pattern = re.compile(r"\.(" + "|".join(map(re.escape, sorted(class_map, key=len, reverse=True))) + r")(?![\w-])")
        svg = re.sub(r"(<style\b[^>]*>)(.*?)(</style\s*>)",
                     lambda m: m.group(1) + pattern.sub(lambda c: "." + class_map[c.group(1)], m.group(2)) + m.group(3),
                     svg, flags=re.S | re.I)
    return svg


def parse_choice(answer: str, choices: list[str]) -> str | None:
    """Map an answer like 'B', 'B.', '(b) a cat', 'The answer is B' or 'a cat' to a choice."""
    letters = prompts.letters(len(choices))
    text = answer.strip()
    lowered = text.lower()
    named = [c for c in choices if c.lower() in lowered]
    if len(named) == 1:
        return named[0]
    # A leading letter: "B", "B.", "(C) ...", "**D**"; a lowercase letter only when no word follows,
    # so the article in "a dog or a car" is not read as option A.
    match = re.match(r"^[\s(\[*\"']*(?:([A-Z])(?:[\s).\]:*\"',]|$)|([a-z])(?:[).\]:*\"',]|$))", text)
    if match:
        letter = (match.group(1) or match.group(2)).upper()
        if letter in letters:
            return choices[letters.index(letter)]
    match = re.search(r"\b(?:answer|option|choice)\s*(?:is|:)?\s*\(?([A-Z])\b", text, re.I)
    if match and match.group(1).upper() in letters:
        return choices[letters.index(match.group(1).upper())]
    return None


class CodeRecognizer:
    source = "code"

    def __init__(self, llm: ChatLLM):
        self.llm = llm

    def recognize(self, drawing: Drawing) -> Recognition:
        choices = drawing.choices or [drawing.concept]
        prompt = prompts.RECOGNIZE.format(language=drawing.language, code=strip_hints(drawing.code, drawing.language),
                                          options=prompts.options_block(choices))
        try:
            data, answer = ask_json(self.llm, [("user", prompt)], prompts.choice_schema(len(choices)), "choice")
            answer = answer or self.llm.complete([("user", prompt)])
        except LLMError as exc:
            return Recognition(label=None, correct=False, confidence=None, choices=choices, source=self.source,
                               error=str(exc))
        label = parse_choice(str(data["answer"]) if data else answer.text, choices)
        return Recognition(label=label, correct=label == drawing.concept, confidence=None, choices=choices,
                           source=self.source, usage=answer.usage(),
                           error=None if label else f"unparseable answer: {answer.text.strip()[:80]!r}")
