"""The SVG guard: a pure parse that refuses anything an engine could use to reach outside the drawing.

(One file on purpose, ~760 lines: it is one security boundary, and the parse, the walk, the reference
and marker bounds and the re-serialisation share its invariants; an audit reads it top to bottom.)

    from drawloop.renderers.guard import check_svg
    checked = check_svg(code, canvas=256)
    if checked.ok:
        engine_input = checked.svg        # re-serialised: only what passed, on a square canvas
    else:
        print(checked.reason)             # precise and human-readable: goes back to the drawer

Runs before every SVG render (typically well under 1 ms), in time linear in the input whatever
it holds: no regex here can backtrack, and whatever must look for "the next X" is a scanner.
What it enforces:
- size cap; no DTD ever reaches a parser: a DOCTYPE that only names an external DTD (never
  fetched) or declares plain-text entities (Illustrator files) is dropped and its entities
  substituted with a size bound; any other DTD is refused by defusedxml (no XXE, no billion
  laughs); root <svg>; depth and element caps;
- `href`/`xlink:href` only `#id`, or (on <image>) a small base64 `data:image/png|jpeg|gif|webp`
  whose real format matches and whose decoded pixel count is bounded;
- CSS is checked wherever it appears (all the text of a <style>, children's text and tails
  included; `style` attributes; presentation attributes that take url()): no external `url(...)`,
  `@import`, `@font-face`, image functions or CSS escapes, and no `href` or `id` properties
  (cairosvg copies any CSS property onto the element, so `href:` in CSS would embed a document).
  The engines get that CSS without comments, a <style> as one plain text: exactly what was checked;
- no <script>, <foreignObject>, <feImage> and friends; unknown and foreign-namespace elements
  (Inkscape metadata, XInclude, ...) are dropped, as are event handlers and `xml:base`;
- bounded expansion of `<use>`/`href`/`url(#id)` references and markers (a marker-mid is drawn
  at every vertex; markers are inherited, and those set in <style> or on a <use> are counted on
  every shape), with cycle detection.
The engines only ever see the re-serialised tree, never the raw text (so no processing
instructions, comments or gzip payloads survive). With `canvas=N` the root gets width/height N and
a viewBox, so every engine letterboxes a non-square drawing the same way.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"
XHTML_NS = "http://www.w3.org/1999/xhtml"

DRAWING_ELEMENTS = frozenset("""
    svg g defs symbol use switch a title desc style
    path rect circle ellipse line polyline polygon text tspan textPath
    linearGradient radialGradient stop pattern clipPath mask marker filter image view
    feBlend feColorMatrix feComponentTransfer feComposite feConvolveMatrix feDiffuseLighting
    feDisplacementMap feDistantLight feDropShadow feFlood feFuncA feFuncB feFuncG feFuncR
    feGaussianBlur feMerge feMergeNode feMorphology feOffset fePointLight feSpecularLighting
    feSpotLight feTile feTurbulence
""".split())
# Refused with a reason: they run code, embed other documents or fetch resources.
FORBIDDEN_ELEMENTS = {
    "script": "scripts cannot run in a drawing",
    "foreignObject": "embedded HTML is not rendered",
    "feImage": "filters may not load images",
    "iframe": "embedded documents are not allowed",
    "object": "embedded documents are not allowed",
    "embed": "embedded documents are not allowed",
    "audio": "media is not allowed", "video": "media is not allowed",
    "canvas": "canvas is not SVG", "handler": "scripts cannot run in a drawing",
    "listener": "scripts cannot run in a drawing", "animation": "embedded documents are not allowed",
    "font-face-uri": "external fonts are not allowed", "color-profile": "external profiles are not allowed",
    "cursor": "external cursors are not allowed",
}
# Silently dropped: not drawn by a static renderer anyway.
IGNORED_ELEMENTS = frozenset("metadata animate animateMotion animateTransform animateColor set mpath".split())
# Properties that take url(): as attributes they are checked like CSS, as in a style attribute.
URL_PROPERTIES = frozenset("fill stroke clip-path mask filter marker marker-start marker-mid marker-end "
                           "cursor color-profile".split())
MARKER_PROPERTIES = {"marker": (0, 1, 2), "marker-start": (0,), "marker-mid": (1,), "marker-end": (2,)}
MARKABLE = frozenset("path line polyline polygon".split())  # the shapes that draw markers
_NO_MARKERS: tuple[tuple[str, ...], ...] = ((), (), ())
FLOATING_MARKERS = "markers set in <style> or on <use>"
MAX_FLOATING_MARKERS = 64
IMAGE_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "gif": "GIF", "webp": "WEBP"}

# Every pattern below runs on untrusted text, so none may backtrack: no two adjacent quantifiers can
# match the same characters, and quantifiers are possessive (`*+`, `++`) wherever a failed match
# could otherwise retry shorter runs. Anything needing nesting or "up to the next X" is a scanner.
_FRAGMENT = re.compile(r"#[^\s'\"()#]++")
_DATA_IMAGE = re.compile(r"data:image/([a-z]++);base64,(.*+)", re.IGNORECASE | re.DOTALL)
_ENTITY = re.compile(r"<!ENTITY\s++([A-Za-z_][\w.-]*+)\s++\"([^&%<>\"']*+)\"\s*+>")
_ENTITY_REFERENCE = re.compile(r"&([A-Za-z_][\w.-]*+);")
_DECLARATION = re.compile(r"<!\s*+(DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)", re.IGNORECASE)
_SPACED_URL = re.compile(r"url\s++\(", re.IGNORECASE)
_IMAGE_FUNCTION = re.compile(r"\b(?:image|image-set|cross-fade|element|src)\s*+\(", re.IGNORECASE)
# A declaration starts at the start of a declaration list, or after `;`, `{` or `}` (tinycss2).
# cairosvg copies every declaration onto the element as an attribute, so CSS must not set the
# attributes that make it load or resolve things: href (an <image> would embed another document)
# and id (references would resolve to elements the guard never counted).
_ATTRIBUTE_DECLARATION = re.compile(r"(?:^|[;{}])\s*+(href|id)\s*+:", re.IGNORECASE)
_MARKER_DECLARATION = re.compile(r"(?:^|[;{}])\s*+(marker(?:-start|-mid|-end)?+)\s*+:([^;{}]*+)",
                                 re.IGNORECASE)
_XML_SPACE = re.compile(r"[ \t\r\n]*+")
_NUMBER = re.compile(r"[0-9]++(?:\.[0-9]*+)?+|\.[0-9]++")
_LENGTH = re.compile(r"\s*+((?:[0-9]++(?:\.[0-9]++)?+|\.[0-9]++)(?:e[-+]?+[0-9]++)?+)"
                     r"\s*+(px|pt|pc|mm|cm|in)?+\s*+", re.IGNORECASE)
_UNIT_PX = {None: 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54, "in": 96.0}


@dataclass(frozen=True)
class GuardLimits:
    max_bytes: int = 256 * 1024
    max_depth: int = 64
    max_elements: int = 10_000
    max_expanded: int = 100_000         # elements drawn once every <use>/url(#id) is expanded
    max_image_pixels: int = 2048 * 2048  # per embedded data:image


DEFAULT_LIMITS = GuardLimits()


@dataclass
class GuardResult:
    ok: bool
    svg: str | None = None
    reason: str | None = None
    warnings: list[str] = field(default_factory=list)


class Refused(Exception):
    """Internal: carries the human-readable reason out of the walk."""


def check_svg(code: str, limits: GuardLimits = DEFAULT_LIMITS, canvas: int | None = None) -> GuardResult:
    warnings: list[str] = []
    try:
        root = _parse(code, limits, warnings)
        ids, refs = _sanitise(root, limits, warnings)
        _check_expansion(root, ids, refs, limits)
        if canvas:
            _set_canvas(root, canvas)
        svg = serialise(root)
    except Refused as refusal:
        return GuardResult(ok=False, reason=str(refusal), warnings=warnings)
    return GuardResult(ok=True, svg=svg, warnings=warnings)


# --- parsing -------------------------------------------------------------------------------------

def _parse(code: str, limits: GuardLimits, warnings: list[str]) -> ET.Element:
    if not isinstance(code, str):
        raise Refused(f"drawing code must be text, got {type(code).__name__}")
    if not code.strip():
        raise Refused("empty drawing code: expected an <svg> document")
    size = len(code.encode("utf-8", "replace"))
    if size > limits.max_bytes:
        raise Refused(f"SVG is {size:,} bytes; the limit is {limits.max_bytes:,} bytes: simplify the drawing")
    code = _drop_doctype(code, limits, warnings)
    try:
        return _fromstring(code)
    except SafeET.ParseError as exc:
        if "unbound prefix" in str(exc) and "xlink:" in code and "xmlns:xlink" not in code:
            warnings.append('added the missing xmlns:xlink declaration')
            repaired = re.sub(r"<svg\b", f'<svg xmlns:xlink="{XLINK_NS}"', code, count=1)
            try:
                return _fromstring(repaired)
            except SafeET.ParseError as again:
                exc = again
        raise Refused(f"SVG is not well-formed XML: {exc}") from None


def _drop_doctype(code: str, limits: GuardLimits, warnings: list[str]) -> str:
    """Remove a harmless DOCTYPE before any parser sees it: one that only names an external DTD
    (never fetched) and declares plain-text entities (Illustrator's `<!ENTITY ns_svg "...">`),
    which we substitute ourselves; their values cannot reference other entities, so the result is
    at most len(values) x references long, and that is bounded before it is built. Any other DTD
    (parameter or external entities, nesting, markup declarations) is left for defusedxml to refuse."""
    found = _find_doctype(code)
    if found is None:
        return code
    prolog_end, subset, body_start = found
    entities = _plain_entities(subset)
    if entities is None:
        return code
    body = code[body_start:]
    references = _ENTITY_REFERENCE.findall(body)
    grown = sum(len(entities.get(name, "")) for name in references)
    if len(body) + grown > limits.max_bytes:
        raise Refused("entities in the <!DOCTYPE> expand the SVG beyond "
                      f"{limits.max_bytes:,} bytes: write plain SVG without a DOCTYPE")
    if entities:
        body = _ENTITY_REFERENCE.sub(lambda m: entities.get(m.group(1), m.group(0)), body)
    warnings.append("ignored the <!DOCTYPE> (DTDs are never loaded)")
    return code[:prolog_end] + body


# The DOCTYPE is found by a scanner, not a regex: "comments, then a DOCTYPE" as a regex backtracks
# exponentially in the number of comments when no DOCTYPE follows (each comment can also be read
# as the start of a longer one). Comments end at the first "-->", as XML says.

def _find_doctype(code: str) -> tuple[int, str, int] | None:
    """(end of the prolog, internal subset, end of the DOCTYPE) for a leading `<!DOCTYPE svg ...>`
    after an optional XML declaration and comments; None if there is none of that shape."""
    i = _skip_space(code, 0)
    if code.startswith("<?xml", i):
        end = code.find("?>", i)
        if end < 0 or ">" in code[i:end]:
            return None
        i = _skip_space(code, end + 2)
    while code.startswith("<!--", i):
        end = code.find("-->", i + 4)
        if end < 0:
            return None
        i = _skip_space(code, end + 3)
    prolog_end = i
    if not code.startswith("<!DOCTYPE", i):
        return None
    i = _skip_space(code, i + 9)
    if i == prolog_end + 9 or not code.startswith("svg", i):
        return None
    i = _external_id(code, i + 3)
    if i < 0:
        return None
    subset = ""
    if code.startswith("[", i):
        end = code.find("]", i)
        if end < 0:
            return None
        subset, i = code[i + 1:end], _skip_space(code, end + 1)
    return (prolog_end, subset, i + 1) if code.startswith(">", i) else None


def _external_id(code: str, i: int) -> int:
    """Index after an optional ` PUBLIC "a" ["b"]` or ` SYSTEM "a"` and spaces; -1 if malformed."""
    j = _skip_space(code, i)
    if j > i and code.startswith(("PUBLIC", "SYSTEM"), j):
        public = code.startswith("PUBLIC", j)
        k = _skip_space(code, j + 6)
        end = _quoted_end(code, k) if k > j + 6 else -1
        if end < 0:
            return -1
        if public:
            k = _skip_space(code, end)
            second = _quoted_end(code, k) if k > end else -1
            end = second if second > 0 else end
        return _skip_space(code, end)
    return j


def _quoted_end(code: str, i: int) -> int:
    if code[i:i + 1] not in ("'", '"'):
        return -1
    end = code.find(code[i], i + 1)
    return end + 1 if end > 0 else -1


def _plain_entities(subset: str) -> dict[str, str] | None:
    """{name: value} if the internal subset holds only spaces, comments and plain-text entities."""
    entities: dict[str, str] = {}
    i = _skip_space(subset, 0)
    while i < len(subset):
        if subset.startswith("<!--", i):
            end = subset.find("-->", i + 4)
            if end < 0:
                return None
            i = end + 3
        else:
            match = _ENTITY.match(subset, i)
            if not match:
                return None
            entities.setdefault(match.group(1), match.group(2))
            i = match.end()
        i = _skip_space(subset, i)
    return entities


def _skip_space(text: str, i: int) -> int:
    return _XML_SPACE.match(text, i).end()


def _fromstring(code: str) -> ET.Element:
    """Entities and external references can only be declared in a DTD. Text with no "<!DOCTYPE"
    (or stray "<!ENTITY") cannot have one, so it takes the C parser; anything else goes through
    defusedxml, which refuses the DTD. Same verdicts, three times faster on typical drawings."""
    if not _DECLARATION.search(code):
        return ET.fromstring(code)  # raises the same ParseError as defusedxml
    try:
        return SafeET.fromstring(code, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        kinds = {"DTDForbidden": "a <!DOCTYPE> declaration", "EntitiesForbidden": "an <!ENTITY> declaration",
                 "ExternalReferenceForbidden": "an external reference"}
        kind = kinds.get(type(exc).__name__, type(exc).__name__)
        raise Refused(f"found {kind}: DTDs, entities and external references are not allowed in drawings; "
                      "remove them and write plain SVG elements") from None
    except RecursionError:
        raise Refused("SVG nesting is too deep to parse") from None


def _split(tag: str) -> tuple[str | None, str]:
    if tag[:1] == "{":
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return None, tag


# --- the walk ------------------------------------------------------------------------------------

def _sanitise(root: ET.Element, limits: GuardLimits, warnings: list[str]):
    """Check and clean the tree in place. Returns ({id: element}, {element: [(referenced id, times)]})."""
    ns, local = _split(root.tag) if isinstance(root.tag, str) else (None, "")
    if local != "svg" or ns not in (None, SVG_NS):
        raise Refused(f"the root element must be <svg>, got <{local or root.tag}>")
    if ns is None:
        warnings.append('added the missing xmlns="http://www.w3.org/2000/svg"')
    ids: dict[str, ET.Element] = {}
    refs: dict[ET.Element, list[tuple[str, int]]] = {}
    floating: set[str] = set()   # marker ids that may end up on any shape (see _float_markers)
    sheet_refs: set[str] = set()
    shapes: list[tuple[ET.Element, str | None]] = []  # markable shapes, and the <marker> they are in
    count = 0
    stack = [(root, 1, _NO_MARKERS, None)]
    while stack:
        element, depth, inherited, in_marker = stack.pop()
        count += 1
        if count > limits.max_elements:
            raise Refused(f"too many elements: more than {limits.max_elements}; simplify the drawing")
        if depth > limits.max_depth:
            raise Refused(f"elements are nested more than {limits.max_depth} levels deep")
        local = _split(element.tag)[1]
        element.tag = local  # plain names + one literal xmlns on the root: a clean serialisation
        refs[element] = [(target, 1) for target in _check_attributes(element, local, ids, limits, warnings)]
        if local == "style":
            targets = _check_style_element(element, warnings)
            sheet_refs.update(targets)
            refs[element] += [(target, 1) for target in targets]
            continue  # its children were folded into its text
        markers = _markers(element, inherited)
        refs[element] += _marker_refs(element, local, markers)
        if local == "use":
            floating.update(target for targets in markers for target in targets)
        elif local in MARKABLE:
            shapes.append((element, in_marker))
        elif local == "marker":
            in_marker = element.get("id", "").strip()
        stack.extend((child, depth + 1, markers, in_marker) for child in _filter_children(element, warnings))
    floating.update(target for target in sheet_refs if _split(ids.get(target, root).tag)[1] == "marker")
    _float_markers(floating, shapes, ids, refs)
    attributes = dict(root.attrib)
    root.attrib.clear()
    root.set("xmlns", SVG_NS)
    root.attrib.update(attributes)
    return ids, refs


def _check_style_element(element: ET.Element, warnings: list[str]) -> list[str]:
    """A <style> holds only CSS text, but engines differ in what they read when it has children
    (cairosvg: the text before the first child; others: all of it). Check all of it, text of
    children and their tails included, and keep it as one plain text without comments, so every
    engine reads exactly what was checked. Returns its url(#id) targets."""
    css = "".join(element.itertext())
    if len(element):
        warnings.append("dropped the elements inside <style> (it holds only CSS text)")
        element[:] = []
    element.text = _check_css(css, "<style>")
    return _check_urls(element.text, "<style>")


def _filter_children(parent: ET.Element, warnings: list[str]) -> list[ET.Element]:
    """The children worth keeping; the others are removed in one pass (removing them one by one
    is quadratic in the number of children), keeping text after a dropped element inside <text>,
    which still shows."""
    kept: list[ET.Element] = []
    carried: list[str] = []
    dropped = False
    for child in parent:
        if _keep(child, warnings):
            _carry_tails(parent, kept, carried)
            kept.append(child)
        else:
            dropped = True
            if child.tail and child.tail.strip():
                carried.append(child.tail)
    if dropped:
        _carry_tails(parent, kept, carried)
        parent[:] = kept
    return kept


def _carry_tails(parent: ET.Element, kept: list[ET.Element], carried: list[str]) -> None:
    """Append the tails of dropped children to the last kept one (or the parent's text), joined
    once: appending them one at a time would copy the growing text every time."""
    if carried:
        if kept:
            kept[-1].tail = (kept[-1].tail or "") + "".join(carried)
        else:
            parent.text = (parent.text or "") + "".join(carried)
        carried.clear()


def _keep(child: ET.Element, warnings: list[str]) -> bool:
    if not isinstance(child.tag, str):  # comments / processing instructions (not kept by the parser)
        return False
    ns, local = _split(child.tag)
    if ns not in (None, SVG_NS):
        return False  # Inkscape/Sodipodi/RDF metadata, XInclude, XHTML: no engine should see them
    if local == "foreignObject" and _only_metadata(child):
        return False  # Illustrator's <switch> alternative (empty, or private data): draws nothing
    if local in FORBIDDEN_ELEMENTS:
        raise Refused(f"<{local}> is not allowed in drawings ({FORBIDDEN_ELEMENTS[local]})")
    if local in IGNORED_ELEMENTS:
        return False
    if local not in DRAWING_ELEMENTS:
        warning = f"ignored unknown element <{local}>"
        if not warnings or warnings[-1] != warning:  # once per run of them, not 100,000 times
            warnings.append(warning)
        return False
    return True


def _only_metadata(element: ET.Element) -> bool:
    """No text and no SVG/XHTML elements inside: nothing any engine could show."""
    for inner in element.iter():
        if ((inner.text or "").strip()
                or inner is not element and _split(inner.tag)[0] in (None, SVG_NS, XHTML_NS)):
            return False
    return True


def _check_attributes(element: ET.Element, local: str, ids: dict, limits: GuardLimits,
                      warnings: list[str]) -> list[str]:
    referenced: list[str] = []
    for key, value in list(element.attrib.items()):
        ns, name = _split(key) if key[0] == "{" else (None, key)
        if ns is not None and not (ns == XLINK_NS and name == "href" or ns == XML_NS and name == "space"):
            del element.attrib[key]  # foreign namespaces (Inkscape...), xml:base: never drawn
            continue
        if name[:2].lower() == "on":
            del element.attrib[key]  # event handlers
            continue
        if name == "href":
            target = _check_href(value, local, limits)
            del element.attrib[key]  # re-added as plain SVG 2 `href`, which every engine reads
            if target is None:
                warnings.append(f"dropped the link on <{local}> (links are not rendered)")
                continue
            element.set("href", value.strip())
            if target:
                referenced.append(target)
            continue
        if name == "id":
            ids.setdefault(value.strip(), element)
        elif name == "style" or name in URL_PROPERTIES:
            where = (f"the style attribute of <{local}>" if name == "style"
                     else f'{name}="{_clip(value)}" on <{local}>')
            value = _check_css(value, where)
            element.set(key, value)
        if "url" in value.lower():
            targets = _check_urls(value, f'{name}="{_clip(value)}" on <{local}>')
            if name not in MARKER_PROPERTIES:  # markers are counted per vertex by _marker_refs
                referenced += targets
    return referenced


def _check_href(value: str, local: str, limits: GuardLimits) -> str | None:
    """'' for an accepted data image, the id for '#id', None for a dropped <a> link; else refuse."""
    value = value.strip()
    if _FRAGMENT.fullmatch(value):
        return value[1:]
    if local == "a":
        return None
    if local == "image" and value[:5].lower() == "data:":
        _check_data_image(value, limits)
        return ""
    raise Refused(f'<{local} href="{_clip(value)}"> is not allowed: links may only point inside the drawing '
                  "(#id), and <image> may only embed a small data:image/png, jpeg, gif or webp URI")


def _check_data_image(uri: str, limits: GuardLimits) -> None:
    match = _DATA_IMAGE.fullmatch(uri.strip())
    if not match or match.group(1).lower() not in IMAGE_FORMATS:
        raise Refused(f'embedded image "{_clip(uri)}" is not allowed: only base64 '
                      "data:image/png, jpeg, gif or webp URIs")
    try:
        payload = base64.b64decode(re.sub(r"\s+", "", match.group(2)), validate=True)
    except (binascii.Error, ValueError):
        raise Refused("embedded image: the base64 data is invalid") from None
    wanted = IMAGE_FORMATS[match.group(1).lower()]
    found = _sniff_format(payload)
    if found != wanted:
        raise Refused(f"embedded image says {wanted} but contains {found or 'something else'}")
    from PIL import Image  # only drawings with embedded images pay for the import

    try:
        with Image.open(io.BytesIO(payload), formats=[wanted]) as image:  # reads the header only
            width, height = image.size
    except Image.DecompressionBombError:
        raise Refused("embedded image is far too large (a decompression bomb)") from None
    except Exception:
        raise Refused(f"embedded {wanted} image could not be read") from None
    if width * height > limits.max_image_pixels:
        raise Refused(f"embedded image is {width}x{height} pixels; the limit is "
                      f"{limits.max_image_pixels} pixels (e.g. 2048x2048)")


def _sniff_format(payload: bytes) -> str | None:
    if payload.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if payload.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if payload[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if payload[:4] == b"RIFF" and payload[8:12] == b"WEBP":
        return "WEBP"
    return None


def _check_urls(value: str, where: str) -> list[str]:
    """The ids of every url(#id) in `value`; refuse any other url(...)."""
    targets = []
    for target in _url_targets(value, where):
        if not _FRAGMENT.fullmatch(target):
            raise Refused(f"url({_clip(target)}) in {where} is not allowed: only url(#id) references "
                          "to elements of the drawing")
        targets.append(target[1:])
    return targets


def _url_targets(value: str, where: str) -> list[str]:
    """What each `url(` in `value` points at (quotes and spaces removed). A scanner: each `url(`
    ends at the first `)`, so the text is read once (a regex retried every `url(` to the end)."""
    lower = value.lower()
    if "url" not in lower:
        return []
    if _SPACED_URL.search(value):
        raise Refused(f"malformed url(...) in {where}")
    targets, i = [], lower.find("url(")
    while i >= 0:
        end = value.find(")", i + 4)
        if end < 0:
            raise Refused(f"malformed url(...) in {where}")
        target = value[i + 4:end].strip()
        if len(target) >= 2 and target[0] in "'\"" and target[-1] == target[0]:
            target = target[1:-1].strip()
        targets.append(target)
        i = lower.find("url(", end + 1)
    return targets


def _check_css(css: str, where: str) -> str:
    """Check CSS text and return it without comments: that is what the engines get, so they see
    exactly what was checked (a "/*" inside a string is not a comment to a CSS parser, and
    stripping it here means nothing hides behind that disagreement)."""
    text = _strip_css_comments(css)
    if "\\" in text:
        raise Refused(f"CSS escapes (backslashes) in {where} are not allowed")
    lower = text.lower()
    if "@import" in lower:
        raise Refused(f"@import in {where} is not allowed: drawings cannot load stylesheets")
    if "@font-face" in lower:
        raise Refused(f"@font-face in {where} is not allowed: use font-family with generic families "
                      "(sans-serif, serif, monospace)")
    if _IMAGE_FUNCTION.search(text):
        raise Refused(f"CSS image functions in {where} are not allowed")
    declared = _ATTRIBUTE_DECLARATION.search(text)
    if declared:
        raise Refused(f"the CSS property {declared.group(1)!r} in {where} is not allowed: set href and id "
                      "as attributes (href only as #id)")
    _check_urls(text, where)
    return text


def _strip_css_comments(css: str) -> str:
    """Each /* ... */ becomes one space (as CSS reads it); an unclosed one runs to the end."""
    if "/*" not in css:
        return css
    parts, i = [], 0
    while True:
        start = css.find("/*", i)
        if start < 0:
            parts.append(css[i:])
            break
        parts.append(css[i:start] + " ")
        end = css.find("*/", start + 2)
        if end < 0:
            break
        i = end + 2
    return "".join(parts)


def _clip(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


# --- output --------------------------------------------------------------------------------------

def serialise(root: ET.Element) -> str:
    """XML text of the cleaned tree (plain tag names, so simpler and faster than ET.tostring)."""
    out: list[str] = []
    _write(root, out)
    return "".join(out)


def _write(element: ET.Element, out: list[str]) -> None:
    out.append("<" + element.tag)
    for key, value in element.attrib.items():
        out.append(f' {"xml:space" if key[0] == "{" else key}="{_escape(value, attribute=True)}"')
    if len(element) or element.text:
        out.append(">" + _escape(element.text or ""))
        for child in element:
            _write(child, out)
        out.append(f"</{element.tag}>")
    else:
        out.append("/>")
    if element.tail:
        out.append(_escape(element.tail))


def _escape(text: str, attribute: bool = False) -> str:
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if attribute:
        text = text.replace('"', "&quot;").replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")
    return text


# --- markers -------------------------------------------------------------------------------------

def _markers(element: ET.Element, inherited: tuple) -> tuple:
    """The marker ids at each position (start, mid, end) on this element: its own marker
    properties (attributes, then its style attribute) override the inherited ones. A position set
    twice (`marker` and `marker-mid`, attribute and style) keeps every id named: which one wins
    differs by engine, and counting both never undercounts."""
    declarations = [(name, value) for name, value in element.attrib.items() if name in MARKER_PROPERTIES]
    style = element.get("style")
    if style and "marker" in style.lower():
        declarations += [(m.group(1).lower(), m.group(2)) for m in _MARKER_DECLARATION.finditer(style)]
    if not declarations:
        return inherited
    own: dict[int, tuple[str, ...]] = {}
    for name, value in declarations:
        targets = tuple(target[1:] for target in _url_targets(value, name))  # checked: all #id
        if targets or value.strip().lower() == "none":
            for position in MARKER_PROPERTIES[name]:
                own[position] = own.get(position, ()) + targets
    return tuple(own.get(position, inherited[position]) for position in range(3))


def _marker_refs(element: ET.Element, local: str, markers: tuple) -> list[tuple[str, int]]:
    """A shape draws its start and end markers once and its mid marker at every other vertex."""
    if local not in MARKABLE or markers == _NO_MARKERS:
        return []
    start, mid, end = markers
    middle = max(_vertices(element, local) - 2, 0)
    return [(t, 1) for t in start] + [(t, middle) for t in mid] + [(t, 1) for t in end]


def _vertices(element: ET.Element, local: str) -> int:
    """An upper bound on a shape's vertices: every path vertex but a closing one takes at least one
    number (`h5`), and a polyline vertex takes two."""
    if local == "line":
        return 2
    if local == "path":
        d = element.get("d", "")
        return len(_NUMBER.findall(d)) + d.count("z") + d.count("Z") + 1
    return len(_NUMBER.findall(element.get("points", ""))) // 2 + 2


def _float_markers(floating: set[str], shapes: list, ids: dict, refs: dict) -> None:
    """Markers named in a <style> rule may land on any shape (selectors are not matched here), and
    those a <use> inherits land on the shapes of its instance: count them on every shape, through
    one shared node per <marker>, so that costs one edge per shape. A shape inside marker #m skips
    #m itself (resvg does not draw a marker inside itself, cairosvg fails the render), otherwise
    `.arrow {marker-end: url(#m)}` would read as a cycle. Node ids have spaces: no #id
    names them."""
    if not floating:
        return
    if len(floating) > MAX_FLOATING_MARKERS:
        raise Refused(f"more than {MAX_FLOATING_MARKERS} different markers are set in <style> or on <use> "
                      "elements; set marker-start/mid/end attributes on the shapes instead")
    for element, in_marker in shapes:
        bundle = FLOATING_MARKERS + (f" (inside #{in_marker})" if in_marker in floating else "")
        if bundle not in ids:
            ids[bundle] = ET.Element("marker", id=bundle)
            refs[ids[bundle]] = [(target, 1) for target in sorted(floating) if target != in_marker]
        refs[element].append((bundle, _vertices(element, element.tag)))


# --- reference expansion -------------------------------------------------------------------------

def _check_expansion(root: ET.Element, ids: dict, refs: dict, limits: GuardLimits) -> None:
    """Count the elements drawn once references are expanded, each reference as many times as it
    is drawn (a marker-mid once per vertex); iterative DFS, memoised per element, so linear in the
    references however often they multiply. Refuse reference cycles and exponential fan-out."""
    cap = limits.max_expanded
    if not any(refs.values()):
        return  # nothing referenced: the element cap already bounds the drawing
    size: dict[ET.Element, int] = {}
    # element, how it was reached, edges, running total, times its parent draws it
    stack = [[root, "", _edges(root, ids, refs), 1, 1]]
    on_path = {root}
    while stack:
        frame = stack[-1]
        nxt = next(frame[2], None)
        if nxt is None:
            stack.pop()
            on_path.discard(frame[0])
            size[frame[0]] = frame[3]
            if stack:
                stack[-1][3] += frame[4] * frame[3]
        else:
            child, via, times = nxt
            if child in size:
                frame[3] += times * size[child]
            elif child in on_path:
                _refuse_cycle(stack, child, via)
            else:
                on_path.add(child)
                stack.append([child, via, _edges(child, ids, refs), 1, times])
        if stack and stack[-1][3] > cap or not stack and size[root] > cap:
            raise Refused(f"<use>, marker and url(#id) references expand to more than {cap} elements; "
                          "reuse fewer copies, nest them less deeply or use smaller markers on fewer "
                          "vertices")


def _refuse_cycle(stack: list, child: ET.Element, via: str) -> None:
    start = next(i for i, f in enumerate(stack) if f[0] is child)
    chain = [f"#{child.get('id', '?')}"] + [f[1] for f in stack[start + 1:] if f[1]] + [via]
    hint = ""
    if FLOATING_MARKERS in " ".join(chain):
        hint = (" (markers set in <style> or on a <use> are counted on every shape, including the shapes "
                "inside markers: set marker-start/mid/end attributes on the shapes themselves)")
    raise Refused("references form a cycle: " + " -> ".join(chain) +
                  "; an element cannot (indirectly) use itself" + hint)


def _edges(element: ET.Element, ids: dict, refs: dict):
    for child in element:
        yield child, "", 1
    for target, times in refs.get(element, ()):
        if target in ids and times:
            yield ids[target], "#" + target, times


# --- canvas --------------------------------------------------------------------------------------

def _set_canvas(root: ET.Element, canvas: int) -> None:
    """Square output canvas; keep the drawing's own coordinates in the viewBox (letterboxed)."""
    if "viewBox" not in root.attrib:
        width, height = _length(root.get("width")), _length(root.get("height"))
        if width and height:
            root.set("viewBox", f"0 0 {width:g} {height:g}")
    root.set("width", str(canvas))
    root.set("height", str(canvas))


def _length(value: str | None) -> float | None:
    match = _LENGTH.fullmatch(value or "")
    if not match:
        return None
    unit = match.group(2).lower() if match.group(2) else None
    return float(match.group(1)) * _UNIT_PX[unit] or None
