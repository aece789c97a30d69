"""Live terminal displays (a run's progress bar) and the people who type under them.

A live display redraws itself several times a second, so a prompt printed beneath it is wiped
or hidden before anyone reads it. The command that shows a display registers it with `showing`;
a plugin that asks a person for input (the human agent and judge) wraps its prompt in
`paused()`, which stops every registered display until the answer is in, then redraws them.
Thread-safe: prompts are read in worker threads while the event loop keeps playing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Display(Protocol):
    """Anything that can be stopped and started again (rich's `Progress` and `Live` can)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


_lock = threading.RLock()
_displays: list[Display] = []
_pauses = 0  # prompts in progress (nested or concurrent): restart only when the last ends


@contextmanager
def showing(display: Display) -> Iterator[Display]:
    """Register a started display for the duration of the block."""
    with _lock:
        _displays.append(display)
    try:
        yield display
    finally:
        with _lock:
            _displays.remove(display)


@contextmanager
def paused() -> Iterator[None]:
    """Stop every live display while a person reads and types; redraw them afterwards."""
    global _pauses
    with _lock:
        if _pauses == 0:
            for d in _displays:
                d.stop()
        _pauses += 1
    try:
        yield
    finally:
        with _lock:
            _pauses -= 1
            if _pauses == 0:
                for d in _displays:
                    d.start()
