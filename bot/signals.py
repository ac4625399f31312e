"""Stopping cleanly when the host says so: SIGTERM (every restart) and SIGINT (Ctrl-C) call a
function on the event loop instead of killing the process mid-request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def on_stop_signals(stop: Callable[[signal.Signals], None]) -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT call `stop(signal)` on the running loop. Where the
    loop cannot take signals (not the main thread), the block runs without it."""
    loop = asyncio.get_running_loop()
    installed = []
    for number in STOP_SIGNALS:
        try:
            loop.add_signal_handler(number, stop, number)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        installed.append(number)
    try:
        yield
    finally:
        for number in installed:
            loop.remove_signal_handler(number)


def exit_status(number: signal.Signals) -> int:
    """The shell's exit status for a process stopped by `number` (130 for SIGINT, 143 ...)."""
    return 128 + int(number)
