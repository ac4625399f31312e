"""The serving runtime: models converted to LiteRT graphs (`.tflite`, written by
classifier.training.litert_convert) run on ai-edge-litert, so answering a song never loads
TensorFlow or Keras. Where no LiteRT wheel exists for the platform, the Keras models serve.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CONVERT_COMMAND = "python -m classifier.training.litert_convert"
# Rows per call of a graph; a longer batch runs in pieces of this many. It bounds what each
# interpreter holds for its activations (musicnn's front end needs about 2 MB a row) and costs
# nothing in speed: a musicnn row takes the same time in pieces of 8 as in one call of 32
# (benchmarks/litert_speed.py).
MAX_BATCH = 8

_threads: int | None = None
# Threads of a call made while it is the only request running (None: always `_threads`).
_alone: int | None = None
_running = 0  # requests running now, counted by `request()`
_running_lock = threading.Lock()
# Whether this process has allocated an interpreter yet: the first allocation starts the
# runtime's CPU kernels (XNNPACK), which prints an INFO line straight to the stderr file.
_runtime_started = False
_runtime_lock = threading.Lock()
RUNTIME_INFO_PREFIX = b"INFO: "


@functools.cache
def available() -> bool:
    """Whether LiteRT can serve here; said once in the log when it cannot and Keras serves
    instead (without the `train` extra, loading a model says what to install)."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        from .extras import missing_training_modules

        if not missing_training_modules():
            log.warning(
                "LiteRT (ai-edge-litert) is not installed on this platform: the models are "
                "served by TensorFlow/Keras instead, which take longer to load and more memory"
            )
        return False
    return True


def cpu_count() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def use_threads(threads: int, alone: int | None = None) -> None:
    """CPU threads of each model call from now on: a worker of a pool of N on C cores should
    take C // N, so that busy workers never fight over the cores (benchmarks/litert_speed.py
    measures why). With `alone`, a call made while its request is the only one running
    (`request()`) takes that many instead: a lone song gets every core.

    NumPy's BLAS (the front ends' mel projections) gets one thread: its matrices are small,
    and its spinning threads, fighting a busy worker for the cores, made the front ends of a
    30-s song many times slower (benchmarks/litert_speed.py, section 5)."""
    global _threads, _alone
    if threads < 1 or (alone is not None and alone < 1):
        raise ValueError(f"threads must be at least 1, got {threads} and {alone}")
    _threads, _alone = threads, alone
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


@contextmanager
def request() -> Iterator[None]:
    """Count one request as running while the block runs (see use_threads' `alone`)."""
    global _running
    with _running_lock:
        _running += 1
    try:
        yield
    finally:
        with _running_lock:
            _running -= 1


def threads() -> int:
    """CPU threads of a model call made now: as set by use_threads (its `alone` while at
    most one request runs), else every core."""
    if _alone is not None and _running <= 1:
        return _alone
    return _threads if _threads is not None else cpu_count()


class Graph:
    """One converted model, called with a float32 batch, giving its named outputs. Safe to
    call from several threads: each concurrent call gets an interpreter of its own, kept for
    later calls (LiteRT interpreters are not thread-safe, and creating one costs
    milliseconds)."""

    def __init__(self, path: Path, threads_per_call: int | None = None) -> None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path} is missing; create it with: {CONVERT_COMMAND}")
        self.path = Path(path)
        self.threads_per_call = threads_per_call  # else `threads()` at each call
        self._idle: dict[int, list[_Interpreter]] = {}  # by thread count
        self._lock = threading.Lock()

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        count = self.threads_per_call or threads()
        with self._lock:
            idle = self._idle.setdefault(count, [])
            interpreter = idle.pop() if idle else None
        if interpreter is None:
            interpreter = _Interpreter(self.path, count)
        try:
            parts = [
                interpreter.run(batch[start : start + MAX_BATCH])
                for start in range(0, len(batch), MAX_BATCH)
            ]
        finally:
            with self._lock:
                self._idle[count].append(interpreter)
        if len(parts) == 1:
            return parts[0]
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


class _Interpreter:
    """A LiteRT interpreter of one graph, resized only when the batch shape changes."""

    def __init__(self, path: Path, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        signature = self.interpreter.get_signature_runner()
        (self.input,) = (detail["index"] for detail in signature.get_input_details().values())
        self.outputs: Mapping[str, int] = {
            name: detail["index"] for name, detail in signature.get_output_details().items()
        }
        self.shape: tuple[int, ...] | None = None

    def run(self, batch: np.ndarray) -> dict[str, Any]:
        if batch.shape != self.shape:
            self.interpreter.resize_tensor_input(self.input, batch.shape)
            _allocate(self.interpreter)
            self.shape = batch.shape
        self.interpreter.set_tensor(self.input, batch)
        self.interpreter.invoke()
        # get_tensor copies, so the interpreter may serve another call at once.
        return {name: self.interpreter.get_tensor(index) for name, index in self.outputs.items()}


def _allocate(interpreter: Any) -> None:
    """allocate_tensors(); the process's first with the runtime's start-up chatter caught."""
    global _runtime_started
    if not _runtime_started:
        with _runtime_lock:
            if not _runtime_started:
                with _runtime_info_to_log():
                    interpreter.allocate_tensors()
                _runtime_started = True
                return
    interpreter.allocate_tensors()


@contextmanager
def _runtime_info_to_log() -> Iterator[None]:
    """While the block runs, what is written to the stderr file goes to a temporary file; then
    the runtime's INFO lines ("Created TensorFlow Lite XNNPACK delegate for CPU.") go to the
    debug log and everything else back to stderr as it was. LiteRT's C++ logger prints them
    with fprintf whatever TF_CPP_MIN_LOG_LEVEL says, and offers no setting to stop it."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no stderr to redirect: nothing to hide
        yield
        return
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            written = caught.read()
    kept = []
    for line in written.splitlines(keepends=True):
        if line.startswith(RUNTIME_INFO_PREFIX):
            text = line[len(RUNTIME_INFO_PREFIX) :].decode(errors="replace").strip()
            log.debug("LiteRT: %s", text)
        else:
            kept.append(line)
    if kept:
        os.write(2, b"".join(kept))
