"""A new drawing language: a tiny turtle, with its own renderer and drawer, plugged in by name.

    python examples/turtle_renderer.py                                  # the offline local model
    python examples/turtle_renderer.py --model openai:gpt-4o-mini "a house"

The language (one command per line; a 100 x 100 canvas; the turtle starts in the middle facing up):

    color red | width 3 | fill gold | fill none
    forward 30 | back 10 | left 90 | right 45 | up | down | goto 50 20
    circle 20                          a circle of that radius around the turtle
    repeat 4 [ forward 20 right 90 ]   one level of repetition, on one line

`@register("renderer", "turtle")` is all the graph needs: the default renderer routes every
attempt whose language is "turtle" to the renderer registered under that name. The drawer must
speak the language too, so it is registered the same way and picked with drawer="turtle".
"""

from __future__ import annotations

import argparse
import io
import json
import math
import re

import drawloop
from drawloop.agents.base import Draft
from drawloop.agents.drawer import observations
from drawloop.agents.registry import AgentContext, register
from drawloop.llm import LLMError
from drawloop.renderers import RenderResult

MAX_STEPS = 5000  # a drawing is data from a model: bound the work it can ask for
COMMANDS = {"color", "width", "fill", "forward", "fd", "back", "bk", "left", "lt", "right", "rt", "up", "down",
            "goto", "circle", "repeat"}

SYSTEM = """You draw pictures by writing programs in a tiny turtle language. The canvas is 100 x 100;
the turtle starts at (50, 50) facing up with the pen down. One command per line:
color NAME_OR_HEX | width N | fill NAME_OR_HEX | fill none | forward N | back N | left DEG | right DEG
up | down | goto X Y | circle R | repeat N [ COMMANDS ]
Answer with the program in a ```turtle code block and nothing else."""


# -- the renderer -------------------------------------------------------------------------------

def split_commands(line: str) -> list[list[str]]:
    """'forward 20 right 90' -> [['forward', '20'], ['right', '90']]: a command word starts a new command."""
    commands: list[list[str]] = []
    for word in line.split():
        if word in COMMANDS or not commands:
            commands.append([word])
        else:
            commands[-1].append(word)
    return commands


def expand(code: str) -> list[list[str]]:
    """Program text -> a flat list of commands, repeats unrolled; ValueError says what is wrong."""
    steps: list[list[str]] = []
    for number, raw in enumerate(code.splitlines(), 1):
        line = re.sub(r"(^|\s)#(\s.*)?$", "", raw).strip()  # comments; '#ff0000' is a colour
        if not line:
            continue
        times, match = 1, re.fullmatch(r"repeat\s+(\d+)\s*\[(.*)\]", line)
        if match:
            times, line = int(match.group(1)), match.group(2)
        commands = split_commands(line)
        for command in commands:
            if command[0] not in COMMANDS or command[0] == "repeat":
                raise ValueError(f"line {number}: unknown command {' '.join(command)!r}")
        steps.extend(commands * times)
        if len(steps) > MAX_STEPS:
            raise ValueError(f"more than {MAX_STEPS} steps; draw with fewer commands")
    if not steps:
        raise ValueError("the program has no commands")
    return steps


class TurtleRenderer:
    language = "turtle"

    def render(self, code: str, language: str = "turtle", size: int = 256) -> RenderResult:
        from PIL import Image, ImageColor, ImageDraw

        try:
            steps = expand(code)
        except ValueError as exc:
            return RenderResult.failure(str(exc), engine="turtle")
        scale = size * 4 / 100  # draw 4x larger, then shrink: smooth edges
        image = Image.new("RGB", (size * 4, size * 4), "white")
        pen = ImageDraw.Draw(image)
        x, y, heading, down, colour, width, fill = 50.0, 50.0, 90.0, True, "black", 1.0, None
        try:
            for op, *args in steps:
                numbers = [float(a) for a in args] if op not in ("color", "fill") else []
                if op in ("forward", "fd", "back", "bk", "goto"):
                    if op == "goto":
                        nx, ny = numbers[0], numbers[1]
                    else:
                        step = numbers[0] * (1 if op in ("forward", "fd") else -1)
                        nx = x + step * math.cos(math.radians(heading))
                        ny = y - step * math.sin(math.radians(heading))
                    if down:
                        pen.line([(x * scale, y * scale), (nx * scale, ny * scale)], fill=colour,
                                 width=max(1, int(width * scale / 2)))
                    x, y = nx, ny
                elif op in ("left", "lt", "right", "rt"):
                    heading += numbers[0] if op in ("left", "lt") else -numbers[0]
                elif op == "circle":
                    r = numbers[0] * scale
                    pen.ellipse([x * scale - r, y * scale - r, x * scale + r, y * scale + r], fill=fill,
                                outline=colour if down else None, width=max(1, int(width * scale / 2)))
                elif op == "color":
                    colour = ImageColor.getrgb(args[0])
                elif op == "fill":
                    fill = None if args[0] == "none" else ImageColor.getrgb(args[0])
                elif op == "width":
                    width = max(0.1, min(20.0, numbers[0]))
                else:
                    down = op == "down"
        except (IndexError, ValueError) as exc:  # a missing number, an unknown colour name
            return RenderResult.failure(f"bad command {op} {' '.join(args)}: {exc}", engine="turtle")
        out = io.BytesIO()
        image.resize((size, size), Image.Resampling.LANCZOS).save(out, "PNG")
        return RenderResult(ok=True, png=out.getvalue(), engine="turtle")


# -- the drawer ---------------------------------------------------------------------------------

def extract_turtle(text: str) -> str:
    fenced = re.findall(r"```[a-z]*\n(.*?)(?:```|$)", text, re.S)
    lines = (fenced[0] if fenced else text).splitlines()
    return "\n".join(line.strip() for line in lines if line.strip().split(" ", 1)[0] in COMMANDS)


class TurtleDrawer:
    def __init__(self, llm):
        self.llm = llm

    def draw(self, concept, language, history, seed=None) -> Draft:
        previous = next((a for a in reversed(history) if a.get("code")), None)
        user = f"Draw {concept}." if previous is None else (
            f'Here is your previous program for "{concept}":\n```turtle\n{previous["code"]}\n```\n'
            f"{observations(concept, previous)}\nWrite a better program.")
        try:
            answer = self.llm.complete([("system", SYSTEM), ("user", user)])
        except LLMError as exc:
            return Draft(code="", error=str(exc))
        code = extract_turtle(answer.text)
        if not code:
            return Draft(code="", raw=answer.text, error="the answer had no turtle commands", usage=answer.usage())
        return Draft(code=code, raw=answer.text, usage=answer.usage())


@register("renderer", "turtle")
def turtle_renderer(ctx: AgentContext) -> TurtleRenderer:
    return TurtleRenderer()


@register("drawer", "turtle")
def turtle_drawer(ctx: AgentContext) -> TurtleDrawer:
    return TurtleDrawer(ctx.chat(max_tokens=400))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("concept", nargs="?", default="a red ball")
    parser.add_argument("--model", default="local")
    parser.add_argument("--base-url")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--max-iters", type=int, default=3)
    args = parser.parse_args(argv)

    result = drawloop.draw(args.concept, model=args.model, base_url=args.base_url, runs_dir=args.runs_dir,
                           max_iters=args.max_iters, language="turtle", drawer="turtle")
    print(f"best {result.best_score:.2f} after {len(result.attempts)} attempt(s); "
          f"see {result.run_dir / 'contact_sheet.png'} or: drawloop trace show {result.run_dir}")
    outcome = {"example": "turtle_renderer", "run_dir": str(result.run_dir), "best_score": result.best_score,
               "languages": sorted({a["language"] for a in result.attempts}),
               "rendered": sum(1 for a in result.attempts if a.get("image")),
               "errors": [a.get("draw_error") or a.get("render_error") for a in result.attempts]}
    print(json.dumps(outcome))
    return outcome


if __name__ == "__main__":
    main()
