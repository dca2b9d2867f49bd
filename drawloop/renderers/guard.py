"""The SVG guard: a pure parse that refuses anything an engine could use to reach outside the drawing.

    from drawloop.renderers.guard import check_svg
    checked = check_svg(code, canvas=256)
    if checked.ok:
        engine_input = checked.svg        # re-serialised: only what passed, on a square canvas
    else:
        print(checked.reason)             # precise and human-readable: goes back to the drawer

Runs before every SVG render (typically well under 1 ms). What it enforces:
- size cap; no DTD ever reaches a parser: a DOCTYPE that only names an external DTD (never
  fetched) or declares plain-text entities (Illustrator files) is dropped and its entities
  substituted with a size bound; any other DTD is refused by defusedxml (no XXE, no billion
  laughs); root <svg>; depth and element caps;
- `href`/`xlink:href` only `#id`, or (on <image>) a small base64 `data:image/png|jpeg|gif|webp`
  whose real format matches and whose decoded pixel count is bounded;
- no external `url(...)`, `@import` or CSS escapes, in attributes, `style` and <style>;
- no <script>, <foreignObject>, <feImage> and friends; unknown and foreign-namespace elements
  (Inkscape metadata, XInclude, ...) are dropped, as are event handlers and `xml:base`;
- bounded expansion of `<use>`/`href`/`url(#id)` references, with cycle detection.
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
IMAGE_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "gif": "GIF", "webp": "WEBP"}

_URL = re.compile(r"url\(\s*(['\"]?)(.*?)\1\s*\)", re.IGNORECASE | re.DOTALL)
_FRAGMENT = re.compile(r"#[^\s'\"()#]+")
_DATA_IMAGE = re.compile(r"data:image/([a-z]+);base64,(.*)", re.IGNORECASE | re.DOTALL)
_QUOTED = r"(?:\"[^\"]*\"|'[^']*')"
_DOCTYPE = re.compile(r"(?P<prolog>\s*(?:<\?xml[^>]*\?>\s*)?(?:<!--.*?-->\s*)*)<!DOCTYPE\s+svg"
                      rf"(?:\s+(?:PUBLIC\s+{_QUOTED}\s+{_QUOTED}|PUBLIC\s+{_QUOTED}|SYSTEM\s+{_QUOTED}))?"
                      r"\s*(?:\[(?P<subset>[^\]]*)\])?\s*>", re.DOTALL)
_ENTITY = re.compile(r"<!ENTITY\s+([A-Za-z_][\w.-]*)\s+\"([^&%<>\"']*)\"\s*>")
_ENTITY_SUBSET = re.compile(r"(?:\s|<!--(?:(?!-->).)*-->|" + _ENTITY.pattern + r")*", re.DOTALL)
_ENTITY_REFERENCE = re.compile(r"&([A-Za-z_][\w.-]*);")
_DECLARATION = re.compile(r"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)", re.IGNORECASE)
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_LENGTH = re.compile(r"\s*([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*(px|pt|pc|mm|cm|in)?\s*", re.IGNORECASE)
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
    match = _DOCTYPE.match(code)
    if not match or not _ENTITY_SUBSET.fullmatch(match.group("subset") or ""):
        return code
    entities = dict(_ENTITY.findall(match.group("subset") or ""))
    body = code[match.end():]
    references = _ENTITY_REFERENCE.findall(body)
    grown = sum(len(entities.get(name, "")) for name in references)
    if len(body) + grown > limits.max_bytes:
        raise Refused("entities in the <!DOCTYPE> expand the SVG beyond "
                      f"{limits.max_bytes:,} bytes: write plain SVG without a DOCTYPE")
    if entities:
        body = _ENTITY_REFERENCE.sub(lambda m: entities.get(m.group(1), m.group(0)), body)
    warnings.append("ignored the <!DOCTYPE> (DTDs are never loaded)")
    return (match.group("prolog") or "") + body


def _fromstring(code: str) -> ET.Element:
    """Entities and external references can only be declared in a DTD. Text with no "<!DOCTYPE"
    (or stray "<!ENTITY") cannot have one, so it takes the C parser; anything else goes through
    defusedxml, which refuses the DTD. Same verdicts, three times faster on typical drawings."""
    if not _DECLARATION.search(code):
        return ET.fromstring(code)  # raises the same ParseError as defusedxml
    try:
        return SafeET.fromstring(code, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        kind = {"DTDForbidden": "a <!DOCTYPE> declaration", "EntitiesForbidden": "an <!ENTITY> declaration",
                "ExternalReferenceForbidden": "an external reference"}.get(type(exc).__name__, type(exc).__name__)
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
    """Check and clean the tree in place. Returns ({id: element}, {element: [referenced ids]})."""
    ns, local = _split(root.tag) if isinstance(root.tag, str) else (None, "")
    if local != "svg" or ns not in (None, SVG_NS):
        raise Refused(f"the root element must be <svg>, got <{local or root.tag}>")
    if ns is None:
        warnings.append('added the missing xmlns="http://www.w3.org/2000/svg"')
    ids: dict[str, ET.Element] = {}
    refs: dict[ET.Element, list[str]] = {}
    count = 0
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        count += 1
        if count > limits.max_elements:
            raise Refused(f"too many elements: more than {limits.max_elements}; simplify the drawing")
        if depth > limits.max_depth:
            raise Refused(f"elements are nested more than {limits.max_depth} levels deep")
        local = _split(element.tag)[1]
        element.tag = local  # plain names + one literal xmlns on the root: a clean serialisation
        refs[element] = _check_attributes(element, local, ids, limits, warnings)
        if local == "style":
            _check_css(element.text or "", "<style>")
            refs[element] += _fragment_refs(element.text or "")
        for child in list(element):
            if _keep(child, warnings):
                stack.append((child, depth + 1))
            else:
                _remove_keeping_tail(element, child)
    attributes = dict(root.attrib)
    root.attrib.clear()
    root.set("xmlns", SVG_NS)
    root.attrib.update(attributes)
    return ids, refs


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
        warnings.append(f"ignored unknown element <{local}>")
        return False
    return True


def _only_metadata(element: ET.Element) -> bool:
    """No text and no SVG/XHTML elements inside: nothing any engine could show."""
    for inner in element.iter():
        if (inner.text or "").strip() or inner is not element and _split(inner.tag)[0] in (None, SVG_NS, XHTML_NS):
            return False
    return True


def _remove_keeping_tail(parent: ET.Element, child: ET.Element) -> None:
    if child.tail and child.tail.strip():  # text after a dropped element inside <text> still shows
        index = list(parent).index(child)
        if index:
            before = parent[index - 1]
            before.tail = (before.tail or "") + child.tail
        else:
            parent.text = (parent.text or "") + child.tail
    parent.remove(child)


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
        elif name == "style":
            _check_css(value, f"the style attribute of <{local}>")
        if "url" in value.lower():
            referenced += _check_urls(value, f'{name}="{_clip(value)}" on <{local}>')
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
    if "url" not in value.lower():
        return []
    targets = []
    for match in _URL.finditer(value):
        target = match.group(2).strip()
        if not _FRAGMENT.fullmatch(target):
            raise Refused(f"url({_clip(target)}) in {where} is not allowed: only url(#id) references "
                          "to elements of the drawing")
        targets.append(target[1:])
    if value.lower().count("url(") != len(targets) or re.search(r"url\s+\(", value, re.IGNORECASE):
        raise Refused(f"malformed url(...) in {where}")
    return targets


def _check_css(css: str, where: str) -> None:
    text = _CSS_COMMENT.sub(" ", css)
    if "\\" in text:
        raise Refused(f"CSS escapes (backslashes) in {where} are not allowed")
    if "@import" in text.lower():
        raise Refused(f"@import in {where} is not allowed: drawings cannot load stylesheets")
    if re.search(r"@font-face", text, re.IGNORECASE):
        raise Refused(f"@font-face in {where} is not allowed: use font-family with generic families "
                      "(sans-serif, serif, monospace)")
    if re.search(r"\b(image|image-set|cross-fade|element|src)\s*\(", text, re.IGNORECASE):
        raise Refused(f"CSS image functions in {where} are not allowed")
    _check_urls(text, where)


def _fragment_refs(css: str) -> list[str]:
    return [m.group(2).strip()[1:] for m in _URL.finditer(css)]


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


# --- reference expansion -------------------------------------------------------------------------

def _check_expansion(root: ET.Element, ids: dict, refs: dict, limits: GuardLimits) -> None:
    """Count the elements drawn once references are expanded (iterative DFS, memoised per element);
    refuse reference cycles and exponential fan-out."""
    cap = limits.max_expanded
    if not any(refs.values()):
        return  # nothing referenced: the element cap already bounds the drawing
    size: dict[ET.Element, int] = {}
    stack = [[root, "", _edges(root, ids, refs), 1]]  # element, how it was reached, edges, running total
    on_path = {root}
    while stack:
        frame = stack[-1]
        nxt = next(frame[2], None)
        if nxt is None:
            stack.pop()
            on_path.discard(frame[0])
            size[frame[0]] = frame[3]
            if stack:
                stack[-1][3] += frame[3]
        else:
            child, via = nxt
            if child in size:
                frame[3] += size[child]
            elif child in on_path:
                start = next(i for i, f in enumerate(stack) if f[0] is child)
                chain = [f"#{child.get('id', '?')}"] + [f[1] for f in stack[start + 1:] if f[1]] + [via]
                raise Refused("references form a cycle: " + " -> ".join(chain) +
                              "; an element cannot (indirectly) use itself")
            else:
                on_path.add(child)
                stack.append([child, via, _edges(child, ids, refs), 1])
        if stack and stack[-1][3] > cap or not stack and size[root] > cap:
            raise Refused(f"<use> and url(#id) references expand to more than {cap} elements; "
                          "reuse fewer copies or nest them less deeply")


def _edges(element: ET.Element, ids: dict, refs: dict):
    for child in element:
        yield child, ""
    for target in refs.get(element, ()):
        if target in ids:
            yield ids[target], "#" + target


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
