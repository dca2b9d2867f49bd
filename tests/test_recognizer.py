import pytest

from conftest import APPLE, fake_llm
from drawloop.agents.recognizer import CodeRecognizer, make_choices, parse_choice
from drawloop.state import Drawing

CHOICES = ["a dog", "a red apple", "a tree", "a car", "a house"]


def test_make_choices_is_seeded_deduplicated_and_contains_the_concept():
    a = make_choices("a red apple", ["a dog", "a tree", "a dog", "A Red Apple", "a car"], seed=1)
    assert sorted(a) == sorted(["a red apple", "a dog", "a tree", "a car"])
    assert a == make_choices("a red apple", ["a dog", "a tree", "a dog", "A Red Apple", "a car"], seed=1)
    orders = {tuple(make_choices("a red apple", CHOICES[:1] + CHOICES[2:], seed=s)) for s in range(10)}
    assert len(orders) > 1


@pytest.mark.parametrize("answer, expected", [
    ("B", "a red apple"), ("b.", "a red apple"), ("(C) a tree", "a tree"), ("**D**", "a car"),
    ("The answer is E", "a house"), ("It shows a tree.", "a tree"), ("Z", None), ("a dog or a car", None),
    ("I think it is option A because of the tail", "a dog"),
])
def test_parse_choice(answer, expected):
    assert parse_choice(answer, CHOICES) == expected


def test_recognizer_marks_right_and_wrong_and_records_garbage():
    drawing = Drawing(concept="a red apple", code=APPLE, choices=CHOICES)
    right = CodeRecognizer(fake_llm("B")).recognize(drawing)
    assert right["label"] == "a red apple" and right["correct"] and right["source"] == "code"
    wrong = CodeRecognizer(fake_llm("A")).recognize(drawing)
    assert wrong["label"] == "a dog" and not wrong["correct"]
    garbage = CodeRecognizer(fake_llm("hmm, hard to say")).recognize(drawing)
    assert garbage["label"] is None and not garbage["correct"] and "unparseable" in garbage["error"]
    failed = CodeRecognizer(fake_llm("")).recognize(drawing)
    assert failed["label"] is None and "no usable answer" in failed["error"]


def test_hints_are_stripped_before_recognition():
    from drawloop.agents.recognizer import strip_hints

    svg = ('<svg xmlns="http://www.w3.org/2000/svg"><title>A bicycle</title><!-- front wheel -->'
           '<desc>two wheels</desc><circle r="5"/><metadata/></svg>')
    stripped = strip_hints(svg)
    assert "bicycle" not in stripped and "wheel" not in stripped and "<circle" in stripped
    code = "import matplotlib.pyplot as plt  # draw the cat\n# ears\nax = plt.gca()\n"
    assert "cat" not in strip_hints(code, "python") and "plt.gca()" in strip_hints(code, "python")


def test_names_of_ids_and_classes_are_neutralised_and_the_picture_is_unchanged():
    from drawloop.agents.recognizer import strip_hints
    from drawloop.renderers import render

    svg = ('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 100 100">'
           '<style>.waterfallWater { fill: #3af } .tree-top{fill:#fff}</style>'
           '<defs><linearGradient id="waterfallGradient"><stop offset="0" stop-color="#fff"/>'
           '<stop offset="1" stop-color="#06c"/></linearGradient>'
           '<circle id="fff" r="3"/><circle id="treeTopShape" r="9"/></defs>'
           '<rect width="100" height="100" fill="url(#waterfallGradient)" aria-label="a waterfall"/>'
           '<rect class="waterfallWater" x="40" width="20" height="100" data-name="waterfall"/>'
           '<use xlink:href="#treeTopShape" x="20" y="30" class="tree-top"/><use href="#fff" x="80" y="80"/>'
           '<use href="#treeTopShape" x="70" y="30"/></svg>')
    cleaned = strip_hints(svg)
    assert "waterfall" not in cleaned.lower() and "tree" not in cleaned.lower()
    assert 'url(#i1)' in cleaned and 'href="#i2"' in cleaned and 'id="fff"' in cleaned   # colour-like ids kept
    assert ".c1 { fill: #3af }" in cleaned and ".c2{fill:#fff}" in cleaned
    before, after = render(svg, "svg"), render(cleaned, "svg")
    assert before.ok and after.ok and after.png == before.png


def test_recognizer_prompt_never_contains_comments():
    seen = []

    class Spy:
        def complete(self, messages, **kw):
            seen.append(messages[-1][1])
            from drawloop.llm.chat import Completion
            return Completion("A")

    svg = '<svg xmlns="http://www.w3.org/2000/svg"><!-- this is a red apple --><circle r="5"/></svg>'
    CodeRecognizer(Spy()).recognize(Drawing(concept="a red apple", code=svg, choices=CHOICES))
    assert "<!--" not in seen[0] and "<circle" in seen[0]


def test_python_names_are_neutralised_and_the_picture_is_unchanged():
    from drawloop.agents.recognizer import strip_hints
    from drawloop.renderers import render

    code = '''"""A cat sitting."""
import matplotlib.pyplot as plt
from matplotlib.patches import Circle

def draw_cat_ear(ax, ear_x, radius=0.1):
    """One pointy ear."""
    ax.add_patch(plt.Polygon([[ear_x, 0.7], [ear_x + radius, 0.95], [ear_x + 2 * radius, 0.7]], color="gray"))

fig, ax = plt.subplots(figsize=(2, 2))
cat_head = Circle((0.5, 0.5), radius=0.3, color="gray")   # the head
ax.add_patch(cat_head)
for cat_ear_x in (0.25, 0.55):
    draw_cat_ear(ax, ear_x=cat_ear_x, radius=0.1)
ax.set_xlim(0, 1); ax.set_ylim(0, 1); ax.axis("off")
'''
    cleaned = strip_hints(code, "python")
    assert "cat" not in cleaned.lower() and "ear" not in cleaned.replace("Polygon", "").lower()
    assert "radius=0.3" in cleaned and "plt.subplots" in cleaned and "Circle(" in cleaned   # library names stay
    before, after = render(code, "python"), render(cleaned, "python")
    assert before.ok and after.ok and after.png == before.png
    assert strip_hints("def broken(:\n  # a cat\n", "python").strip() == "def broken(:"
