#!/usr/bin/env python3
"""Run Scriabin from a fresh checkout with nothing but Python 3.11+.

    python3 dev.py classify SOURCE...   any `scriabin` command (classify, bot, train, ...)
    python3 dev.py test [PYTEST ARGS]   lint with ruff, then run the whole test suite (as CI does)
    python3 dev.py test --fast [ARGS]   the same without the tests marked slow (training, worker
                                        processes, long files): a couple of minutes on 2 cores

The first run creates `.venv/` beside this file and installs into it the project with
everything: the test tools and the `train` extra (TensorFlow, Keras...: the suite trains small
models); later runs reinstall only when pyproject.toml has changed. A serving install needs
neither: `pip install .` (see the README).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".scriabin-installed"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def python_in_venv() -> Path:
    return BIN / ("python.exe" if os.name == "nt" else "python")


def ensure_environment() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs under any system Python
        sys.exit(f"Scriabin needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.is_file() and STAMP.read_text().strip() == wanted and python_in_venv().exists():
        return
    if not python_in_venv().exists():
        print("Creating .venv (first run only)…", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("Installing Scriabin and its dependencies into .venv…", file=sys.stderr)
    pip = [str(python_in_venv()), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "--quiet", "-e", f"{ROOT}[test,train]"], check=True)
    STAMP.write_text(wanted + "\n")


def run_tests(args: list[str]) -> int:
    """ruff (lint and format), then pytest; `--fast` leaves out the tests marked slow."""
    python = str(python_in_venv())
    if "--fast" in args:
        args = ["-m", "not slow", *(arg for arg in args if arg != "--fast")]
    ruff = [python, "-m", "ruff"]
    lint = subprocess.run([*ruff, "check", str(ROOT)], cwd=ROOT).returncode
    style = subprocess.run([*ruff, "format", "--check", "--quiet", str(ROOT)], cwd=ROOT).returncode
    tests = subprocess.run([python, "-m", "pytest", *args], cwd=ROOT).returncode
    return tests or lint or style


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    ensure_environment()
    if argv[0] == "test":
        return run_tests(argv[1:])
    scriabin = BIN / ("scriabin.exe" if os.name == "nt" else "scriabin")
    return subprocess.run([str(scriabin), *argv]).returncode


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
