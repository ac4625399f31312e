"""The files an operator deploys with work as they are: a wheel carries whatever models/ holds,
the lock pins every serving dependency and nothing of training, compose shares one settings
file between the bot and its workers and checks their health, and the Dockerfile's install
steps make a serving environment, without TensorFlow, that answers a song."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from bot.cli import build_parser, main
from tests.support.audio_fixtures import write_song
from tests.support.dockerfile import DockerBuild, StepFailed
from tests.support.processes import REPO, start_workers, stop_workers
from tests.support.redis_server import free_port

# The `train` extra and what only it brings: never in a serving install.
TRAINING_DISTRIBUTIONS = {"tensorflow", "tensorflow-cpu", "keras", "librosa", "scikit-learn"}
# What a build reads besides the packages and models.
PROJECT_FILES = ("pyproject.toml", "README.md")


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _lock() -> list[Requirement]:
    """requirements.lock's pins (a distribution may have one per Python version range)."""
    pins = []
    for line in (REPO / "requirements.lock").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", line
            pins.append(requirement)
    return pins


def _locked_here() -> dict[str, str]:
    """{distribution: version} of the pins that apply to this platform and Python."""
    return {
        _normal(pin.name): next(iter(pin.specifier)).version
        for pin in _lock()
        if pin.marker is None or pin.marker.evaluate()
    }


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _skip_if_offline(output: str) -> None:
    """Outside CI, skip when pip failed because the package index cannot be reached (as the
    scale-out tests do without redis-server); in CI (CI=1) the failure stands."""
    offline = ("NewConnectionError", "Temporary failure in name resolution", "Network is unr")
    if not os.environ.get("CI") and any(words in output for words in offline):
        pytest.skip("the package index cannot be reached from here")


def _pip_or_skip(command: list[str], **options: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, **options)
    if done.returncode:
        _skip_if_offline(done.stderr)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_the_lock_pins_every_serving_dependency_and_nothing_of_training() -> None:
    pins: dict[str, list[str]] = {}
    for pin in _lock():
        pins.setdefault(_normal(pin.name), []).append(next(iter(pin.specifier)).version)
    for line in _pyproject()["project"]["dependencies"]:
        wanted = Requirement(line)
        name = _normal(wanted.name)
        assert name in pins, f"{name} is not in requirements.lock: regenerate it (see its header)"
        for version in pins[name]:
            assert wanted.specifier.contains(version), f"{name}=={version} is not {wanted}"
    assert not TRAINING_DISTRIBUTIONS & set(pins)
    # Procfile hosts install requirements.txt: the lock's versions, then Scriabin itself.
    lines = (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert [line for line in lines if not line.startswith("#")] == ["-c requirements.lock", "."]


def test_procfile_and_compose_commands_are_scriabin_commands() -> None:
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    commands = [services[name]["command"] for name in ("bot", "worker")]
    commands.append(services["worker"]["healthcheck"]["test"][1:])
    for line in (REPO / "Procfile").read_text(encoding="utf-8").splitlines():
        commands.append(line.split(":", 1)[1].split())
    for command in commands:
        assert command[0] == "scriabin"
        build_parser().parse_args(command[1:])  # exits (fails the test) on a wrong one
    assert {line.split(":")[0] for line in (REPO / "Procfile").read_text().splitlines()} == {
        "bot",
        "worker",
    }


def test_compose_shares_one_optional_settings_file_and_checks_health() -> None:
    yaml = pytest.importorskip("yaml")
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    for name in ("bot", "worker"):
        # The same settings on both sides (the model names the cache keys), and none needed.
        assert services[name]["env_file"] == [{"path": ".env", "required": False}], name
        assert services[name]["depends_on"] == {"redis": {"condition": "service_healthy"}}
        assert services[name]["environment"]["SCRIABIN_BROKER_URL"] == "redis://redis:6379/0"
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert services["worker"]["healthcheck"]["test"] == [
        "CMD",
        "scriabin",
        "status",
        "--worker-here",
    ]
    # No token on a fresh clone: the bot is the console chat, which waits on an open stdin.
    assert services["bot"]["stdin_open"] is True


@pytest.mark.slow
def test_the_worker_health_check_tells_a_live_worker_from_none(
    redis_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("SCRIABIN_BROKER_URL", redis_server.url)
    assert main(["status", "--worker-here"]) == 1
    workers = start_workers(1, redis_server.url, tmp_path)
    try:
        assert main(["status", "--worker-here"]) == 0
    finally:
        stop_workers(workers)
    monkeypatch.setenv("SCRIABIN_BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")
    assert main(["status", "--worker-here"]) == 1  # Redis unreachable: not healthy
    assert capsys.readouterr().out == ""


@pytest.mark.slow
def test_a_built_wheel_carries_whatever_models_holds(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in PROJECT_FILES:
        shutil.copy2(REPO / name, source / name)
    for package in ("bot", "classifier", "config", "models"):
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__*"))
    # Models added after today: a card, a head, a graph, a backbone folder with its licence.
    added = [
        "new-head.json",
        "new-head.keras",
        "new-head.tflite",
        "newbackbone/net.weights.h5",
        "newbackbone/net.tflite",
        "newbackbone/LICENSE",
        "newbackbone/README.md",
        "newbackbone/labels.json",
    ]
    for name in [*added, "scratch-notes.txt", "newbackbone/run.log"]:
        (source / "models" / name).parent.mkdir(parents=True, exist_ok=True)
        (source / "models" / name).write_bytes(b"x")
    _pip_or_skip(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), source]
    )
    (wheel,) = tmp_path.glob("scriabin-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    models = {name.removeprefix("scriabin_models/") for name in names if "models/" in name}
    shipped = {
        path.relative_to(REPO / "models").as_posix()
        for path in (REPO / "models").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert models == shipped | set(added)  # not the notes, nor the log
    assert {"config/defaults.toml", "classifier/training/train.py", "bot/cli.py"} <= names
    assert not [name for name in names if name.startswith(("tests/", "benchmarks/"))]


@pytest.mark.slow
def test_the_dockerfile_steps_make_a_serving_environment_that_answers(tmp_path: Path) -> None:
    image = DockerBuild(REPO / "Dockerfile", REPO, tmp_path / "image")
    build, serve = image.stages
    assert (build.name, serve.name) == ("build", "serve")  # the image is the last stage
    # The serving stage installs nothing: all of it comes from the build stage's environment.
    assert not [command for command in serve.commands() if "pip" in command]
    try:
        image.run(build)
    except StepFailed as failed:
        _skip_if_offline(failed.output)
        raise
    environment, workdir = image.run(serve, commands=False)
    scriabin = shutil.which("scriabin", path=environment["PATH"])
    assert scriabin is not None and Path(scriabin).is_relative_to(image.root)

    installed = _pip_or_skip(
        [str(Path(scriabin).with_name("python")), "-m", "pip", "list", "--format=json"],
        env=environment,
    )
    versions = {_normal(item["name"]): item["version"] for item in json.loads(installed.stdout)}
    assert "ai-edge-litert" in versions and "scriabin" in versions
    assert not set(versions) & TRAINING_DISTRIBUTIONS
    # Every locked distribution this platform needs, at its locked version.
    pins = _locked_here()
    assert {name: versions.get(name) for name in pins} == pins

    song = write_song(tmp_path / "song", seconds=6, fmt="wav")
    environment["TMPDIR"] = str(tmp_path)
    answered = subprocess.run(
        [scriabin, "classify", str(song)],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert answered.returncode == 0, answered.stderr[-3000:]
    assert answered.stdout.startswith("🎵 song.wav\n") and "Model: genre-fusion" in answered.stdout
    assert answered.stderr == ""
    listing = subprocess.run(
        [scriabin, "models"], cwd=workdir, env=environment, capture_output=True, text=True
    )
    assert listing.stdout.startswith("genre-fusion ") and "musicnn-genre " in listing.stdout
    print(f"serving environment: {_megabytes(Path(environment['VIRTUAL_ENV']))} MB")


def _megabytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) >> 20
