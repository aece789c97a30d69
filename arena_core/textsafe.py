"""Untrusted text made safe to print, store and use: visible control characters, escaped rich
markup, redacted secrets, and the character set that names must keep to.

Speaker output, dataset fields, item ids and config strings reach the terminal, rich markup and
tracebacks; none of them may become a terminal control sequence, a markup tag, a path or a leak
of an API key.
"""

from __future__ import annotations

import os
import re

# Names (tournaments, pools, players) stay within this set: they end up in file names, URLs,
# terminal tables and shell commands the CLI suggests, so no separators, spaces or markup.
NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.+@:=-]{0,99}"
_NAME = re.compile(NAME_PATTERN)

# C0/C1 controls (ESC, BEL, CSI, ...), DEL, and the bidirectional overrides that reorder text.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_NL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")

REDACTED = "<redacted>"
_secrets: set[str] = set()
# Environment variables whose values are credentials: never stored or printed.
_SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", re.IGNORECASE)
_MIN_SECRET = 8  # shorter values would redact ordinary words


def name_problem(name: str) -> str | None:
    """Why `name` is not a safe name, or None when it is."""
    if _NAME.fullmatch(name):
        return None
    return (
        f"{visible(name)!r} is not a valid name: use 1-100 letters, digits and _ . + @ : = -, "
        f"starting with a letter, digit or _"
    )


def label_problem(label: str) -> str | None:
    """Why `label` (a player name: shown, never used as a path) is refused, or None.

    Any printable text is fine, markup included, since every output escapes it; control
    characters and bidirectional overrides are not, since they change what a reader sees.
    """
    if _CONTROL_NL.search(label) or label != label.strip():
        return (
            f"{visible(label, newlines=False)!r} is not a valid name: no control characters "
            f"and no leading or trailing spaces"
        )
    return None


def _escape_char(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: object, *, newlines: bool = True) -> str:
    """`text` with control characters shown as `\\xNN` escapes (tabs kept; newlines kept
    unless `newlines` is False), so printing it can never drive the terminal."""
    s = text if isinstance(text, str) else str(text)
    return (_CONTROL if newlines else _CONTROL_NL).sub(_escape_char, redact(s) or "")


def markup(text: object, *, newlines: bool = True) -> str:
    """`text` for a rich markup string or table cell: visible controls, escaped brackets."""
    from rich.markup import escape

    return escape(visible(text, newlines=newlines))


def add_secret(value: str | None) -> None:
    """Remember a credential so that `redact` removes it from anything stored or printed."""
    if value and len(value) >= _MIN_SECRET:
        _secrets.add(value)


def secrets_from_env(environ: dict[str, str] | None = None) -> None:
    """Register every credential-looking environment variable's value (API keys, tokens)."""
    for k, v in (os.environ if environ is None else environ).items():
        if _SECRET_ENV.search(k):
            add_secret(v.strip())


def redact(text: str | None) -> str | None:
    """`text` with every registered secret replaced by <redacted>."""
    if not text or not _secrets:
        return text
    for s in sorted(_secrets, key=len, reverse=True):  # longest first: one key may contain another
        if s in text:
            text = text.replace(s, REDACTED)
    return text
