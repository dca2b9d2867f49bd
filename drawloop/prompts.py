"""Every prompt drawloop sends, in one place.

The drawing prompts follow the study's protocol ("write code that draws X"); the recognition
prompt shows only the code and a lettered list of choices; the critique prompt asks for a
score and concrete fixes. Change wording here, nowhere else.
"""

from __future__ import annotations

SVG_SYSTEM = (
    "You are an expert illustrator who draws by writing SVG code. "
    "Answer with one complete, standalone SVG document and nothing else: "
    'start with <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" width="{size}" height="{size}"> '
    "and end with </svg>. Use shapes, paths, gradients and colour to make the subject clearly recognizable; "
    "give every shape a visible fill or a dark stroke (nothing white on white). "
    "Keep everything inside the canvas. No scripts, no external images, no text labels naming the subject."
)

PYTHON_SYSTEM = (
    "You are an expert illustrator who draws by writing Python code with matplotlib. "
    "Answer with one Python code block and nothing else. The code must draw on the current matplotlib "
    "figure (use `import matplotlib.pyplot as plt`; `fig, ax = plt.subplots()`), use only matplotlib and "
    "numpy, read no files and must not call plt.show() or savefig: the figure is captured for you. "
    "Make the subject clearly recognizable; do not write the subject's name as text."
)

FIRST_DRAFT = "Draw {concept}."

# A revision continues the conversation that produced the drawing it revises: the model's own
# answer stays an assistant turn and only this feedback is new, so a server's prefix cache (llama.cpp:
# ~50 new prompt tokens instead of ~600, bench/local_model.py) already holds everything before it.
REVISION = """{observations}

Rewrite the code to draw {concept} better. Keep what works, fix what is wrong. Answer with the complete new code only."""

PLAIN_REVISION = "Improve your drawing of {concept}. Answer with the complete new code only."

RECOGNIZE = """The following {language} code draws a picture.

```{language}
{code}
```

What does the picture show? Choose exactly one option:
{options}

Answer with the letter of your choice only."""

# Starts with the same text as RECOGNIZE so a local server reuses the cached prompt prefix.
CRITIQUE = """The following {language} code draws a picture.

```{language}
{code}
```

The picture is meant to show {concept}.
{render_note}Rate how well it shows {concept}, from 0 (nothing recognizable) to 10 (clearly and richly drawn).
Then give at most three short, concrete fixes that name the parts to add, move, recolour or reshape.
Answer in exactly this form:
SCORE: <0-10>
FIXES:
- <fix>
- <fix>"""


# Structured variants: the same prefix (the server's prompt cache still applies), a JSON answer.
CRITIQUE_JSON_TAIL = ('Answer as JSON: {"score": <0-10>, "fixes": ["<fix>", "<fix>"]}')
CRITIQUE_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["score", "fixes"],
                   "properties": {"score": {"type": "integer", "minimum": 0, "maximum": 10},
                                  "fixes": {"type": "array", "maxItems": 3, "items": {"type": "string"}}}}


def critique_json(prompt: str) -> str:
    """CRITIQUE with its answer form replaced by the JSON one."""
    return prompt.split("Answer in exactly this form:")[0] + CRITIQUE_JSON_TAIL


def choice_schema(n: int) -> dict:
    return {"type": "object", "additionalProperties": False, "required": ["answer"],
            "properties": {"answer": {"type": "string", "enum": letters(n)}}}


PAIRWISE_JUDGE = """Two drawings, A and B, were made from code to show: "{concept}".
Look at both images. Which one shows "{concept}" better: more recognisable, with the right parts,
colours and layout? If they are equally good, answer A.
Answer with JSON only: {{"better": "A" or "B", "reason": "<one sentence>"}}"""

def system_prompt(language: str, size: int) -> str:
    if language == "python":
        return PYTHON_SYSTEM
    return SVG_SYSTEM.format(size=size)


def letters(n: int) -> list[str]:
    return [chr(ord("A") + i) for i in range(n)]


def options_block(choices: list[str]) -> str:
    return "\n".join(f"{letter}. {choice}" for letter, choice in zip(letters(len(choices)), choices))
