"""1 MB inputs shaped like the red team's worst cases for the SVG guard, in one place: the guard's
linear-time test (tests/test_guard.py) and its benchmark (bench/render.py --guard) both use them.

    from hostile.guard_worst_cases import BENIGN, WORST_CASES   # with tests/ on sys.path

Each took minutes (or forever) before the guard's regexes became scanners: exponential in leading
comments; quadratic in runs of `url(`, `/*`, dropped elements, spaces in a length; markers on a
huge path or from <style> multiplied drawing work uncounted. BENIGN is an ordinary 1 MB drawing
(about 18,000 shapes, each referencing a gradient) to compare against on the same machine.
"""

MB = 1 << 20
HEAD = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 100 100">'


def one_mb(unit: str, head: str = HEAD, tail: str = "</svg>") -> str:
    return head + unit * ((MB - len(head) - len(tail)) // len(unit)) + tail


BENIGN = one_mb('<rect x="1" y="2" width="3" height="4" fill="url(#g)"/>', head=HEAD + '<linearGradient id="g"/>')

WORST_CASES = {
    "leading comments": one_mb("<!---->", head="", tail=HEAD + "</svg>"),
    "leading comments, then a DOCTYPE": one_mb("<!-- x -->", head="", tail="<!DOCTYPE svg>" + HEAD + "</svg>"),
    "url( in an attribute": one_mb("url(", head=HEAD + '<rect fill="', tail='"/></svg>'),
    "url( in <style>": one_mb("url(", head=HEAD + "<style>", tail="</style></svg>"),
    "/* in a style attribute": one_mb("/* ", head=HEAD + '<rect style="', tail='"/></svg>'),
    "/* in <style>": one_mb("/* ", head=HEAD + "<style>", tail="</style></svg>"),
    "CSS after a child of <style>": one_mb("a{fill:red}<g/>", head=HEAD + "<style>", tail="</style></svg>"),
    "dropped elements with text after them": one_mb("<b/>x", head=HEAD + "<text>", tail="</text></svg>"),
    "entity references without ;": one_mb("&a", head='<!DOCTYPE svg [<!ENTITY a "b">]>' + HEAD + "<!--",
                                           tail="--></svg>"),
    "a digit run in the root width": one_mb("1", head='<svg xmlns="http://www.w3.org/2000/svg" width="',
                                            tail='x"/>'),
    "a space run in the root width": one_mb(" ", head='<svg xmlns="http://www.w3.org/2000/svg" width="1',
                                            tail='x"/>'),
    "marker-mid on a path of a million numbers": one_mb(
        "1 ", head=HEAD + '<marker id="m"><rect/></marker><path marker-mid="url(#m)" d="M', tail='"/></svg>'),
    "markers from <style> on 18k paths": one_mb(
        '<path d="M0 0 1 1 2 2"/>', head=HEAD + '<style>path{marker-mid:url(#m)}</style><marker id="m"/>'),
}
