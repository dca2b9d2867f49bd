"""The SVG guard: what passes is re-serialised and harmless; what does not gets a precise reason."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from drawloop.renderers.guard import GuardLimits, check_svg

HEAD = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 100 100">'


def svg(body: str) -> str:
    return HEAD + body + "</svg>"


def png_uri(width: int, height: int, kind: str = "png") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buffer, kind.upper())
    return f"data:image/{kind};base64," + base64.b64encode(buffer.getvalue()).decode()


def test_plain_drawing_passes_and_is_reserialised_on_a_square_canvas():
    checked = check_svg(svg('<circle cx="50" cy="50" r="30" fill="red"/>'), canvas=256)
    assert checked.ok and checked.reason is None
    assert checked.svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100"')
    assert 'width="256" height="256"' in checked.svg
    assert '<circle cx="50" cy="50" r="30" fill="red"/>' in checked.svg


def test_viewbox_is_derived_from_width_and_height_with_units():
    checked = check_svg('<svg xmlns="http://www.w3.org/2000/svg" width="2in" height="96px"/>', canvas=64)
    assert 'viewBox="0 0 192 96"' in checked.svg and 'width="64"' in checked.svg


def test_missing_namespaces_are_repaired_with_a_warning():
    checked = check_svg('<svg><rect id="r" width="5" height="5"/><use xlink:href="#r"/></svg>')
    assert checked.ok
    assert any("xmlns:xlink" in w for w in checked.warnings)
    assert any('xmlns="http://www.w3.org/2000/svg"' in w for w in checked.warnings)
    assert '<use href="#r"/>' in checked.svg  # xlink:href becomes SVG 2 href


def test_comments_processing_instructions_and_foreign_metadata_are_dropped():
    code = ('<?xml-stylesheet href="http://example.invalid/s.css"?>'
            '<svg xmlns="http://www.w3.org/2000/svg" xmlns:ink="http://www.inkscape.org/namespaces/inkscape"'
            ' ink:version="1"><!-- hi --><ink:layer/><metadata><x/></metadata>'
            '<rect ink:label="a" onclick="evil()" width="1" height="1"/></svg>')
    checked = check_svg(code)
    assert checked.ok
    assert "stylesheet" not in checked.svg and "ink" not in checked.svg and "onclick" not in checked.svg
    assert "hi" not in checked.svg and "metadata" not in checked.svg
    assert '<rect width="1" height="1"/>' in checked.svg


def test_unknown_elements_are_dropped_with_a_warning_but_text_after_them_survives():
    checked = check_svg(svg('<text x="1" y="9">a<blink>b</blink>c</text>'))
    assert checked.ok and checked.warnings == ["ignored unknown element <blink>"]
    assert "<text" in checked.svg and ">ac</text>" in checked.svg


@pytest.mark.parametrize("code, reason", [
    ("", "empty drawing code"),
    ("<svg", "not well-formed XML"),
    ("<html/>", "root element must be <svg>, got <html>"),
    ('<!DOCTYPE svg [<!ENTITY a SYSTEM "file:///etc/passwd">]><svg xmlns="http://www.w3.org/2000/svg">&a;</svg>',
     "<!DOCTYPE>"),
    ('<!DOCTYPE svg [<!ENTITY a "x"><!ENTITY b "&a;&a;">]><svg xmlns="http://www.w3.org/2000/svg">&b;</svg>',
     "<!DOCTYPE>"),
    ('<!DOCTYPE svg [<!ENTITY a "' + "x" * 9000 + '">]><svg xmlns="http://www.w3.org/2000/svg"><text>'
     + "&a;" * 30 + "</text></svg>", "entities in the <!DOCTYPE> expand the SVG beyond 262,144 bytes"),
    (svg("<foreignObject><p>hi</p></foreignObject>"), "<foreignObject> is not allowed"),
    (svg('<foreignObject><h:b xmlns:h="http://www.w3.org/1999/xhtml"/></foreignObject>'), "<foreignObject>"),
    (svg("<foreignObject>text</foreignObject>"), "<foreignObject> is not allowed"),
    (svg("<script>x()</script>"), "<script> is not allowed"),
    (svg('<filter id="f"><feImage href="#a"/></filter>'), "<feImage> is not allowed"),
    (svg('<image href="file:///etc/passwd"/>'), '<image href="file:///etc/passwd"> is not allowed'),
    (svg('<image href="/etc/passwd"/>'), "links may only point inside the drawing"),
    (svg('<use href="other.svg#a"/>'), '<use href="other.svg#a"> is not allowed'),
    (svg('<rect fill="url(http://x.invalid/a#b)"/>'), 'url(http://x.invalid/a#b) in fill='),
    (svg('<rect style="fill:url(\'a.svg#b\')"/>'), "in the style attribute of <rect>"),
    (svg("<style>@import 'x.css';</style>"), "@import in <style>"),
    (svg("<style>@font-face{src:local(x)}</style>"), "@font-face"),
    (svg('<rect style="fill:\\75rl(x)"/>'), "CSS escapes"),
    (svg('<rect fill="url (x)"/>'), "malformed url(...)"),
    (svg('<image href="data:image/svg+xml;base64,PHN2Zy8+"/>'), "only base64 data:image/png, jpeg, gif or webp"),
    (svg('<image href="data:image/png;base64,@@@"/>'), "base64 data is invalid"),
    (svg(f'<image href="{png_uri(4, 4, "gif")}"/>'.replace("image/gif", "image/png")), "says PNG but contains GIF"),
    (svg(f'<image href="{png_uri(3000, 2000)}"/>'), "embedded image is 3000x2000 pixels"),
])
def test_refusals_name_the_problem(code, reason):
    checked = check_svg(code)
    assert not checked.ok and checked.svg is None
    assert reason in checked.reason


def test_a_harmless_doctype_is_dropped_and_plain_entities_substituted():
    plain = ('<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
             '"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n<svg xmlns="http://www.w3.org/2000/svg"/>')
    checked = check_svg(plain)
    assert checked.ok and checked.warnings == ["ignored the <!DOCTYPE> (DTDs are never loaded)"]
    illustrator = ('<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.0//EN" "http://x.invalid/svg10.dtd" [\n'
                   '  <!ENTITY ns_svg "http://www.w3.org/2000/svg">\n  <!ENTITY ns_ai "http://ns.adobe.com/AI/10/">\n'
                   ']>\n<svg xmlns="&ns_svg;" xmlns:i="&ns_ai;"><switch><foreignObject requiredExtensions="&ns_ai;" '
                   'width="1" height="1"><i:pgfRef href="#x"/></foreignObject><g i:extraneous="self"><rect width="5" height="5"/></g></switch></svg>')
    checked = check_svg(illustrator)
    assert checked.ok, checked.reason
    assert checked.svg == ('<svg xmlns="http://www.w3.org/2000/svg"><switch><g><rect width="5" height="5"/>'
                           '</g></switch></svg>')


def test_small_embedded_images_of_each_allowed_format_pass():
    for kind in ("png", "jpeg", "gif", "webp"):
        assert check_svg(svg(f'<image width="10" height="10" href="{png_uri(8, 8, kind)}"/>')).ok, kind


def test_fragment_references_pass_and_links_on_anchors_are_dropped():
    checked = check_svg(svg('<defs><linearGradient id="g"/></defs><a href="https://x.invalid/">'
                            '<rect fill="url(#g)" style="stroke: url( \'#g\' )"/></a>'))
    assert checked.ok and "x.invalid" not in checked.svg
    assert checked.warnings == ["dropped the link on <a> (links are not rendered)"]


def test_size_depth_and_element_caps():
    limits = GuardLimits(max_bytes=1000, max_depth=5, max_elements=20)
    assert "the limit is 1,000 bytes" in check_svg(svg("<g/>" * 300), limits).reason
    assert "nested more than 5 levels" in check_svg(svg("<g>" * 6 + "</g>" * 6), limits).reason
    assert "more than 20" in check_svg(svg("<g/>" * 25), limits).reason
    assert check_svg(svg("<g>" * 4 + "</g>" * 4), limits).ok


def test_reference_cycles_are_refused_with_the_chain():
    reason = check_svg(svg('<g id="a"><use href="#b"/></g><g id="b"><use href="#c"/></g>'
                           '<g id="c"><use href="#a"/></g>')).reason
    assert "references form a cycle: #a -> #b -> #c -> #a" in reason
    assert "cycle: #m -> #m" in check_svg(svg('<mask id="m"><rect mask="url(#m)"/></mask>')).reason


def test_exponential_use_fanout_is_refused_but_moderate_reuse_passes():
    def tree(levels: int, fanout: int) -> str:
        defs = ['<g id="l0"><rect width="1" height="1"/></g>']
        for i in range(1, levels + 1):
            defs.append(f'<g id="l{i}">' + f'<use href="#l{i - 1}"/>' * fanout + "</g>")
        return svg("<defs>" + "".join(defs) + f'</defs><use href="#l{levels}"/>')

    assert check_svg(tree(3, 10)).ok  # about 2,000 drawn elements
    reason = check_svg(tree(6, 10)).reason
    assert "expand to more than 100000 elements" in reason


def test_shared_targets_are_counted_once_per_use_not_exponentially_in_time():
    body = '<defs><g id="a"><rect width="1" height="1"/></g></defs>' + '<use href="#a"/>' * 5000
    assert check_svg(svg(body)).ok


def test_non_text_input_is_refused():
    assert "must be text" in check_svg(b"<svg/>").reason
