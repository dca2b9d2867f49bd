import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import APPLE, fake_llm
from drawloop.agents.drawer import Drawer, NoCodeError, extract_code, extract_svg, observations, repair_svg


def parses(svg: str) -> bool:
    ET.fromstring(svg)
    return True


def test_plain_svg_passes_through():
    assert extract_svg(APPLE) == APPLE


def test_fenced_svg_with_prose_around():
    answer = f"Sure! Here is an apple:\n\n```svg\n{APPLE}\n```\n\nThis uses a red circle for the body."
    assert extract_svg(answer) == APPLE


def test_xml_fence_and_text_after_closing_tag():
    answer = f"```xml\n{APPLE}\nSome trailing words\n```"
    assert extract_svg(answer) == APPLE


def test_unfenced_svg_inside_prose():
    answer = f"I drew it: {APPLE} Hope you like it."
    assert extract_svg(answer) == APPLE


def test_missing_xmlns_is_added():
    svg = extract_svg('<svg width="100" height="100"><circle cx="50" cy="50" r="40" fill="red"/></svg>')
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("viewBox") == "0 0 100 100"


def test_missing_xlink_namespace_is_added():
    svg = extract_svg('<svg xmlns="http://www.w3.org/2000/svg"><defs><circle id="c" r="5"/></defs>'
                      '<use xlink:href="#c"/></svg>')
    assert 'xmlns:xlink="http://www.w3.org/1999/xlink"' in svg and parses(svg)


def test_answer_cut_by_stop_sequence_is_closed():
    # the server stops *at* </svg> and does not return it
    svg = extract_svg('```svg\n<svg xmlns="http://www.w3.org/2000/svg"><g><circle r="4"/></g>\n')
    assert svg.endswith("</svg>") and parses(svg)


def test_answer_truncated_mid_tag_is_cut_back_and_closed():
    svg = extract_svg('<svg xmlns="http://www.w3.org/2000/svg"><g fill="red"><circle r="4"/><path d="M 0 0 L 10')
    assert parses(svg)
    assert '<path d="M 0 0"/>' in svg and svg.endswith("</g></svg>")  # the half-written command is dropped


def test_plain_doctype_is_dropped_but_entities_are_not_silently_fixed():
    svg = repair_svg('<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">'
                     '<svg xmlns="http://www.w3.org/2000/svg"/>')
    assert "DOCTYPE" not in svg
    hostile = '<!DOCTYPE svg [<!ENTITY x "boom">]><svg xmlns="http://www.w3.org/2000/svg">&x;</svg>'
    assert "ENTITY" in extract_svg(hostile) or "&x;" in extract_svg(hostile)


@pytest.mark.parametrize("answer", ["I cannot draw that.", "", "```python\nprint('hi')\n```"])
def test_prose_without_svg_raises(answer):
    with pytest.raises(NoCodeError):
        extract_svg(answer)


def test_python_extraction_takes_the_code_block():
    code = extract_code("Here:\n```python\nimport matplotlib.pyplot as plt\nfig, ax = plt.subplots()\n```\n", "python")
    assert code.startswith("import matplotlib") and code.endswith("\n")
    with pytest.raises(NoCodeError):
        extract_code("I would draw a cat with ears.", "python")


def test_drawer_first_draft_and_revision_prompts():
    drawer = Drawer(fake_llm(f"```svg\n{APPLE}\n```", APPLE), size=128)
    first = drawer.messages("a red apple", "svg", [])
    assert "Draw a red apple." in first[-1][1] and "0 0 128 128" in first[0][1]
    history = [{"iteration": 0, "code": APPLE, "raw": f"Sure!\n```svg\n{APPLE}\n```", "language": "svg",
                "render_error": None, "recognition": {"label": "a tomato", "correct": False},
                "critique": {"score": 0.4, "feedback": "- add a leaf"}}]
    revision = drawer.messages("a red apple", "svg", history)
    # the draft's conversation continues: its answer verbatim, then only the feedback is new
    assert revision[:2] == first and revision[2] == ("assistant", history[0]["raw"])
    assert revision[3][0] == "user" and len(revision) == 4
    assert "a tomato" in revision[3][1] and "- add a leaf" in revision[3][1] and "0.40" in revision[3][1]


def _attempt(iteration, parent, code=APPLE, score=0.5):
    return {"iteration": iteration, "parent": parent, "code": code, "raw": f"answer {iteration}\n{code}",
            "language": "svg", "critique": {"score": score, "feedback": f"- fix number {iteration}"}}


def test_a_revision_replays_the_lineage_of_the_attempt_it_revises():
    # 0 -> 1 -> 3 is the lineage of the best (3); 2 revised 1 too but lost, so it is not replayed
    history = [_attempt(0, None), _attempt(1, 0), _attempt(2, 1), _attempt(3, 1)]
    drawer = Drawer(fake_llm(APPLE))
    turns = drawer.messages("a red apple", "svg", history[:3] + history[3:])
    answers = [text for role, text in turns if role == "assistant"]
    assert answers == ["answer 0\n" + APPLE, "answer 1\n" + APPLE, "answer 3\n" + APPLE]
    assert [role for role, _ in turns] == ["system", "user"] + ["assistant", "user"] * 3
    assert "- fix number 3" in turns[-1][1] and "- fix number 1" in turns[5][1]
    # every revision's prompt starts with the exact prompt and answer of its parent (prefix cache)
    parent_turns = drawer.messages("a red apple", "svg", history[:2])
    assert turns[:len(parent_turns)] == parent_turns


def test_a_long_lineage_keeps_its_latest_links_and_a_failed_link_ends_it():
    long_code = APPLE + "<!--" + "x" * 3000 + "-->"
    history = [_attempt(0, None, long_code), _attempt(1, 0, long_code), _attempt(2, 1, long_code)]
    turns = Drawer(fake_llm(APPLE)).messages("a red apple", "svg", history)
    assert [text.split("\n")[0] for role, text in turns if role == "assistant"] == ["answer 1", "answer 2"]
    failed = [_attempt(0, None), {**_attempt(1, 0), "code": "", "raw": "no svg"}, _attempt(2, 1)]
    turns = Drawer(fake_llm(APPLE)).messages("a red apple", "svg", failed)
    assert [text.split("\n")[0] for role, text in turns if role == "assistant"] == ["answer 2"]


def test_plain_feedback_mode_hides_the_critic():
    drawer = Drawer(fake_llm(APPLE), feedback="plain")
    history = [{"iteration": 0, "code": APPLE, "language": "svg", "critique": {"score": 0.4, "feedback": "SECRET"}}]
    turns = drawer.messages("a red apple", "svg", history)
    assert "Improve your drawing" in turns[-1][1] and all("SECRET" not in text for _, text in turns)
    assert turns[2] == ("assistant", APPLE)  # no raw answer recorded: the code stands in for it


def test_revision_after_render_error_leads_with_the_error():
    text = observations("a cat", {"code": "<svg/>", "render_error": "root element must be <svg>"})
    assert text.startswith("The code failed to render: root element must be <svg>")


def test_draw_records_prose_answer_as_error_not_exception():
    draft = Drawer(fake_llm("Sorry, I can only describe it: a red round fruit.")).draw("an apple", "svg", [])
    assert draft.code == "" and "no <svg>" in draft.error and draft.raw.startswith("Sorry")


def test_draw_records_llm_failure():
    draft = Drawer(fake_llm("")).draw("an apple", "svg", [])
    assert draft.code == "" and "no usable answer" in draft.error


LOOPING_PATH = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 256 256"><rect width="256" height="256" '
                'fill="#eef"/><path fill="red" d="M160 128L184 128L196 136L224 136' + "L256 256" * 60)


def test_looping_path_cut_by_token_cap_keeps_the_shape_drawn_so_far():
    svg = extract_svg(LOOPING_PATH)
    assert parses(svg)
    path = ET.fromstring(svg).find("{http://www.w3.org/2000/svg}path")
    assert path is not None and path.get("d").startswith("M160 128L184 128") and path.get("d").count("L256 256") <= 1


@pytest.mark.parametrize("tail, kept", [
    ('<circle cx="5" cy="5" r="4" fill="re', "circle"),   # cut inside a quoted value
    ('<circle cx="5" cy="5" r="4" fill', "circle"),        # a dangling attribute name
    ("<circ", None),                                       # not even a tag name + space: dropped
])
def test_answer_cut_inside_a_start_tag(tail, kept):
    svg = extract_svg('<svg xmlns="http://www.w3.org/2000/svg"><rect width="3" height="3"/>' + tail)
    root = ET.fromstring(svg)
    names = [child.tag.split("}")[1] for child in root]
    assert names == (["rect", kept] if kept else ["rect"])


def test_degenerate_repetition_guard():
    from drawloop.llm.chat import degenerate_repetition

    assert degenerate_repetition("<path d='M0 0" + "L256 256" * 40)
    assert not degenerate_repetition(APPLE * 3)  # repeated markup blocks are long units, not a loop
    assert not degenerate_repetition("<path d='M0 0 L10 20 L30 5 L7 9 Q 4 5 6 7 C 1 2 3 4 5 6'/>")


def test_repetition_guard_stops_streaming_early():
    from drawloop.agents.drawer import Drawer

    words = " ".join(["<svg xmlns='http://www.w3.org/2000/svg'><path d='M0 0"] + ["L256 256"] * 2000)
    draft = Drawer(fake_llm(words)).draw("a cat", "svg", [])
    assert draft.code and draft.usage["tokens_out"] < 400  # stopped long before the 4000 chunks


def test_drawing_loop_guard_catches_copied_blocks_and_walks_off_the_canvas():
    from drawloop.agents.drawer import copied_block, drawing_loop, off_canvas_walk

    head = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 256 256">\n'
    whiskers = "".join(f'  <line x1="{x}" y1="140" x2="{x}" y2="150" stroke="black" stroke-width="2" />\n'
                       for x in (92, 108, 124, 132, 148))
    eyes = '  <circle cx="110" cy="120" r="5" fill="black" />\n  <circle cx="146" cy="120" r="5" fill="black" />\n'
    # seen in a real check-up: a cat's whiskers, its eyes, then the same whiskers again (1,053 tokens)
    assert copied_block(head + whiskers + eyes + whiskers)
    assert drawing_loop(head + whiskers + eyes + whiskers)
    assert not copied_block(head + whiskers + eyes)                       # nothing copied yet
    # the same parts under another transform are deliberate copies (two identical wheels)
    wheel = "".join(f'    <circle cx="0" cy="0" r="{r}" fill="none" stroke="black" stroke-width="3" />\n'
                    for r in (30, 26, 22, 18))
    wheels = f'  <g transform="translate(60 180)">\n{wheel}  </g>\n  <g transform="translate(190 180)">\n{wheel}'
    assert not copied_block(head + wheels)
    # seen in a real check-up: a path counting down the page, far past the 256 px canvas
    walk = head + '<path d="M128 232C88 232 48 192 24 192' + "".join(f"C240 {y} 240 {y + 4} 240 {y + 8}"
                                                                     for y in range(256, 820, 12))
    assert off_canvas_walk(walk) and drawing_loop(walk)
    # a long, legitimate path inside the canvas repeats its command shape but stays on it
    curve = head + '<path d="M10 10' + "".join(f"C{x} {x % 200} {x + 3} {(x * 7) % 250} {x + 5} {x % 97}"
                                               for x in range(10, 240, 6))
    assert not off_canvas_walk(curve) and not drawing_loop(curve)
    assert not drawing_loop(head + '<circle cx="128" cy="128" r="60" fill="red"/>\n</svg>')


GUARD_DRAFTS = sorted((Path(__file__).parent / "guard_drafts").glob("*.txt"))
HEAD = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 256 256" width="256" height="256">\n'


def _bicycle(x: int) -> str:
    return (f'  <circle cx="{x}" cy="170" r="18" fill="none" stroke="black" stroke-width="3"/>\n'
            f'  <circle cx="{x + 44}" cy="170" r="18" fill="none" stroke="black" stroke-width="3"/>\n'
            f'  <path d="M{x} 170 L{x + 16} 140 L{x + 36} 140 L{x + 44} 170" fill="none" stroke="red"/>\n')


LEGITIMATE_PATTERNS = {
    "bullseye": HEAD + "".join(f'  <circle cx="128" cy="128" r="{r}" fill="{c}"/>\n'
                               for r, c in zip(range(120, 0, -12), ["red", "white"] * 5)) + "</svg>",
    "checkerboard": HEAD + "".join(f'  <rect x="{x * 32}" y="{y * 32}" width="32" height="32" fill="black"/>\n'
                                   for y in range(8) for x in range(8) if (x + y) % 2 == 0) + "</svg>",
    "checkerboard as one path": HEAD + '  <path d="' + "".join(
        f"M{(y % 2) * 32} {y * 32}" + "h32v32h-32zm64 0" * 3 + "h32v32h-32z" for y in range(8)) + '"/>\n</svg>',
    "row of bicycles": HEAD + "".join(_bicycle(x) for x in range(8, 240, 60)) + "</svg>",
    "row of bicycles by transform": HEAD + "".join(
        f'  <g transform="translate({x} 0)">\n{_bicycle(0)}  </g>\n' for x in range(20, 240, 60)) + "</svg>",
    "striped flag": HEAD + "".join(f'  <rect x="0" y="{y * 20}" width="256" height="10" fill="#b22234"/>\n'
                                   for y in range(13)) + "</svg>",
}


def _streamed_prefixes(text: str, step: int = 48):
    """What the guard sees as ChatLLM streams (every 16 chunks of about 3 characters)."""
    return [text[:end] for end in range(step, len(text), step)] + [text]


@pytest.mark.parametrize("name", sorted(LEGITIMATE_PATTERNS))
def test_legitimate_repeated_patterns_are_never_cut(name):
    from drawloop.agents.drawer import drawing_loop

    assert not any(drawing_loop(prefix) for prefix in _streamed_prefixes(LEGITIMATE_PATTERNS[name]))


def _same_picture(a_svg: str, b_svg: str) -> bool:
    from drawloop.renderers.svg import render_svg
    from drawloop.imaging import no_new_shape

    return no_new_shape(*(render_svg(svg, size=256, isolate=False).png for svg in (a_svg, b_svg)))


@pytest.mark.parametrize("path", GUARD_DRAFTS, ids=lambda p: p.stem)
def test_real_looping_drafts_stop_early_and_lose_nothing(path):
    """Real drafts of the offline model that ran to the 1,200-token cap (bench/loop_guard.py)."""
    text = path.read_text()
    draft = Drawer(fake_llm(text)).draw("a thing", "svg", [])
    assert draft.code and parses(draft.code)
    assert len(draft.raw) < 0.85 * len(text)                 # stopped before the cap
    assert _same_picture(draft.code, extract_svg(text))      # and the rest would have drawn nothing new


# --- answers of reasoning models, and answers with several drawings -----------------------------

from drawloop.agents.drawer import finished_drawing, set_aside_thinking

SMALL = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="4" height="4"/></svg>'


def test_thinking_aloud_with_tag_names_is_set_aside():
    answer = ("<think>A cat: maybe <svg> with a <circle> for the head, then close with </svg>. "
              "Or a <path>?</think>\n```svg\n" + APPLE + "\n```")
    assert extract_svg(answer) == APPLE
    # templates that put the opening <think> in the prompt: only the closing tag is in the answer
    assert extract_svg("the head is a <circle>, close with </svg></think>" + APPLE) == APPLE


def test_an_answer_cut_off_while_thinking_says_so():
    with pytest.raises(NoCodeError, match="still thinking"):
        extract_svg("<think>first a <svg> root, then a circle for the")


def test_of_several_drawings_the_last_complete_one():
    answer = f"A first try:\n```svg\n{SMALL}\n```\nand an improved version:\n```svg\n{APPLE}\n```\nEnjoy!"
    assert extract_svg(answer) == APPLE
    # a second version cut off by the token cap: the last *complete* one wins
    assert extract_svg(f"{APPLE}\nBetter:\n<svg xmlns=\"http://www.w3.org/2000/svg\"><circle r=") == APPLE


def test_nested_svg_stays_one_drawing():
    nested = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><svg x="1" width="5">'
              '<rect width="4" height="4"/></svg><circle r="2"/></svg>')
    assert extract_svg("Here:\n" + nested + "\nDone.") == nested


def test_the_stream_stops_after_a_finished_drawing_not_inside_thinking():
    assert not finished_drawing("<think>I will end with </svg> and explain" + "." * 400)
    assert not finished_drawing(APPLE)                                 # a second version may follow
    assert finished_drawing(APPLE + "\nThis apple uses a red circle." + " and more prose" * 20)
    assert not finished_drawing(APPLE + "\nBetter:\n<svg viewBox='0 0 9 9'><g>" + " " * 300)
    assert set_aside_thinking("no thinking here") == "no thinking here"
