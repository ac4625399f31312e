"""The Dockerfile's steps run without Docker (which this machine and CI lack), so that the tests
can check what the image would hold: each stage's WORKDIR, ENV and COPY applied to a folder
standing for the image's root, and its RUN steps run there by the shell.

A path the Dockerfile names (`/opt/scriabin`) is that path under the folder; a RUN step reaches
such paths through ENV variables, which carry them mapped. The base image's Python is the one
running the tests (the same minor version, checked)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

# Where the Dockerfile names a path outside variables in a RUN step (it would not be mapped).
_LITERAL_PATH = re.compile(r"(?<![\w$}./-])/[A-Za-z]")
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


class StepFailed(Exception):
    """A RUN step exited with an error; `output` is what it wrote."""

    def __init__(self, command: str, output: str) -> None:
        super().__init__(f"{command!r} failed:\n{output[-3000:]}")
        self.output = output


@dataclass(frozen=True)
class Instruction:
    keyword: str
    argument: str


@dataclass
class Stage:
    base: str
    name: str | None
    steps: list[Instruction] = field(default_factory=list)

    def commands(self) -> list[str]:
        return [step.argument for step in self.steps if step.keyword == "RUN"]


def read_stages(dockerfile: Path) -> list[Stage]:
    """The stages of a Dockerfile and their instructions (continuation lines joined)."""
    stages: list[Stage] = []
    pending = ""
    for raw in dockerfile.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, argument = (pending + line).partition(" ")
        pending = ""
        keyword, argument = keyword.upper(), " ".join(argument.split())
        if keyword == "FROM":
            base, _, name = argument.partition(" AS ")
            stages.append(Stage(base.strip(), name.strip() or None))
        else:
            stages[-1].steps.append(Instruction(keyword, argument))
    return stages


class DockerBuild:
    """The stages of `dockerfile`, built from `context` into `root`."""

    def __init__(self, dockerfile: Path, context: Path, root: Path) -> None:
        self.stages = read_stages(dockerfile)
        self.context = context
        self.root = root
        ignore = context / ".dockerignore"
        lines = ignore.read_text(encoding="utf-8").splitlines() if ignore.is_file() else []
        self.ignored = [line.strip() for line in lines if line.strip() and line[0] != "#"]

    def path(self, image_path: str) -> Path:
        """Where a path of the image lies in the folder standing for it."""
        return self.root / image_path.lstrip("/")

    def run(self, stage: Stage, commands: bool = True) -> tuple[dict[str, str], Path]:
        """Apply a stage (its RUN steps only with `commands`); returns the environment and the
        working directory a process started from the image would get."""
        base = re.fullmatch(r"python:(\d+\.\d+)\S*", stage.base)
        assert base, f"only python:X.Y images are understood, not {stage.base}"
        assert base.group(1) == f"{sys.version_info.major}.{sys.version_info.minor}", (
            f"the image runs Python {base.group(1)}; these steps run on {sys.version}"
        )
        shims = self.root / ".python-shim"
        shims.mkdir(parents=True, exist_ok=True)
        python = shims / "python"
        if not python.exists():
            python.symlink_to(getattr(sys, "_base_executable", sys.executable))
        environment = {
            key: value for key, value in os.environ.items() if not key.startswith("SCRIABIN_")
        }
        environment["PATH"] = f"{shims}{os.pathsep}{environment.get('PATH', '')}"
        workdir = self.path("/")
        for step in stage.steps:
            if step.keyword == "WORKDIR":
                workdir = self.path(step.argument)
                workdir.mkdir(parents=True, exist_ok=True)
            elif step.keyword == "ENV":
                environment.update(self._variables(step.argument, environment))
            elif step.keyword == "COPY":
                self._copy(step.argument, workdir)
            elif step.keyword == "RUN" and commands:
                assert not _LITERAL_PATH.search(step.argument), (
                    f"name image paths through ENV variables in RUN steps: {step.argument}"
                )
                done = subprocess.run(
                    ["sh", "-c", step.argument],
                    cwd=workdir,
                    env=environment,
                    capture_output=True,
                    text=True,
                )
                if done.returncode:
                    raise StepFailed(step.argument, done.stdout + done.stderr)
        return environment, workdir

    def _variables(self, argument: str, environment: dict[str, str]) -> dict[str, str]:
        """ENV KEY=VALUE ...: image paths in each value mapped, then $VARIABLES substituted
        (the host's own PATH stays as it is)."""
        values = {}
        for pair in shlex.split(argument):
            key, _, value = pair.partition("=")
            parts = [value] if "://" in value else value.split(":")  # a URL is not a path list
            joined = os.pathsep.join(
                str(self.path(part)) if part.startswith("/") else part for part in parts
            )
            values[key] = _VARIABLE.sub(
                lambda match: environment.get(match.group(1) or match.group(2), ""), joined
            )
        return values

    def _copy(self, argument: str, workdir: Path) -> None:
        words = shlex.split(argument)
        source_stage = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
        *sources, target = [w for w in words if not w.startswith("--")]
        destination = self.path(target) if target.startswith("/") else workdir / target
        if source_stage is not None:  # every stage shares the one root here
            for source in sources:
                assert self.path(source) == destination, "copies between stages keep their path"
            return
        for source in sources:
            origin = self.context / source
            into = destination / origin.name if target.endswith("/") else destination
            if origin.is_dir():
                shutil.copytree(origin, into, ignore=self._ignore, dirs_exist_ok=True)
            elif not self._is_ignored(origin):
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, into)

    def _is_ignored(self, path: Path) -> bool:
        parts = path.relative_to(self.context).as_posix().split("/")
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            for pattern in self.ignored:
                if fnmatch(prefix, pattern):
                    return True
                if pattern.startswith("**/") and fnmatch(parts[depth - 1], pattern[3:]):
                    return True
        return False

    def _ignore(self, folder: str, names: list[str]) -> list[str]:
        return [name for name in names if self._is_ignored(Path(folder) / name)]
