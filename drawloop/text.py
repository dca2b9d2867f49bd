"""Untrusted text made safe to store and to print: what a model answers, what a trace file holds.

    from drawloop.text import clean_text
    clean_text("ok\x1b[2J\x1b]0;pwned\x07 \ud800done")   # -> "ok done"

A model's answer can hold terminal control sequences (clear the screen, set the window title,
rewrite what the user sees) and invalid Unicode (a lone surrogate cannot be encoded as UTF-8, so a
drawing would be lost when it is written to disk). Drawing code never needs either: XML forbids
control characters other than tab and newlines, and Python source has no use for them.
"""

from __future__ import annotations

import re

# ESC-introduced sequences first (CSI "ESC [ ... final", OSC "ESC ] ... BEL|ST", two-byte escapes), so
# their printable tails ("[2J") go with them; then any remaining C0/C1 control character, DEL, and
# surrogates. Each pattern is a single pass without nested quantifiers: linear time on any input.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]?|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?|\x9b[0-?]*[ -/]*[@-~]?")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")   # \r too: it can overwrite a line


def clean_text(text: str) -> str:
    """The text without terminal control sequences, control characters or lone surrogates."""
    if not text:
        return text
    return _CONTROL.sub("", _ESCAPES.sub("", text.replace("\r\n", "\n")))
