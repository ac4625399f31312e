"""The `scriabin` command: the JSON Lines contract, readable text, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from tests.support.audio_fixtures import write_song
from tests.support.processes import scriabin_environment

pytest_plugins = ["tests.support.http_server"]


def test_json_lines_one_object_per_source_in_input_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], http_server, monkeypatch
) -> None:
    monkeypatch.setenv("SCRIABIN_ALLOW_PRIVATE_NETWORKS", "1")
    first = write_song(tmp_path / "first", seconds=7, fmt="flac")
    http_server.add_file("second.mp3", write_song(tmp_path / "second", 5, "mp3").read_bytes())
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF nonsense")
    sources = [
        str(first),
        str(tmp_path / "missing.mp3"),
        http_server.url("/second.mp3"),
        str(broken),
    ]

    code = main(["classify", "--json", *sources])

    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 1
    objects = [json.loads(line) for line in lines]
    assert [obj["source"] for obj in objects] == sources
    good, missing, linked, bad = objects
    for obj in (good, linked):
        assert set(obj) >= {"source", "title", "duration_s", "genres", "segments", "model"}
        assert len(obj["genres"]) == 14  # every genre of the vocabulary, summing to 1
        assert sum(g["confidence"] for g in obj["genres"]) == pytest.approx(1, abs=1e-3)
        assert [g["confidence"] for g in obj["genres"]] == sorted(
            (g["confidence"] for g in obj["genres"]), reverse=True
        )
        assert set(obj["genres"][0]) == {"genre", "confidence"}
        assert obj["segments"] and {"start_s", "end_s", "genre", "confidence"} <= set(
            obj["segments"][0]
        )
        assert obj["model"]["name"] and obj["model"]["version"]
    assert good["title"] == "first.flac"
    assert linked["duration_s"] == pytest.approx(5, abs=0.2)
    assert set(missing) == {"source", "error", "code"} and missing["code"] == "invalid_source"
    assert bad["code"] == "not_audio"
    assert "Traceback" not in "".join(lines)


def test_text_output_shows_top_genres_with_percentages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_song(tmp_path / "song", seconds=6, fmt="wav")
    assert main(["classify", str(path)]) == 0
    out = capsys.readouterr().out
    assert "song.wav" in out
    assert out.count("%") == 3


def test_console_script_runs_end_to_end(tmp_path: Path) -> None:
    path = write_song(tmp_path / "song", seconds=6, fmt="ogg-vorbis")
    scriabin = Path(sys.executable).with_name("scriabin")
    run = subprocess.run(
        [str(scriabin), "classify", "--json", str(path), "ftp://example.com/x.mp3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    first, second = (json.loads(line) for line in run.stdout.splitlines())
    assert len(first["genres"]) == 14
    assert second["code"] == "invalid_source"
    assert "Traceback" not in run.stdout + run.stderr


def test_version_and_models(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("scriabin ")
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    first = listing.splitlines()[0]
    assert first.startswith("genre-fusion ") and first.endswith("14 genres  (default)")
    assert "leave one artist out" in listing and "leave one source out" in listing
    assert "EfficientAT mn04 (AudioSet); musicnn MSD (Million Song Dataset tags)" in listing


def test_unknown_model_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_song(tmp_path / "song", seconds=4, fmt="wav")
    assert main(["classify", "--model", "no-such-model", str(path)]) == 2
    assert "no model called 'no-such-model'" in capsys.readouterr().err


def _scriabin(
    *arguments: str, cwd: Path, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed `scriabin` command, run as a user runs it."""
    scriabin = Path(sys.executable).with_name("scriabin")
    return subprocess.run(
        [str(scriabin), *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _user_environment(tmp_path: Path) -> dict[str, str]:
    """A user's environment: no SCRIABIN_* settings and no TF_CPP_MIN_LOG_LEVEL (the LiteRT
    runtime prints its start-up line whatever that says); the data folder in `tmp_path`."""
    environment = scriabin_environment(tmp_path)
    del environment["TF_CPP_MIN_LOG_LEVEL"], environment["SCRIABIN_ALLOW_PRIVATE_NETWORKS"]
    return environment


def test_classify_prints_the_answer_and_nothing_on_stderr(tmp_path: Path) -> None:
    song = write_song(tmp_path / "song", seconds=6, fmt="wav")
    quiet = _scriabin("classify", str(song), cwd=tmp_path, environment=_user_environment(tmp_path))
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.startswith("🎵 song.wav\n") and quiet.stdout.count("%") == 3
    assert quiet.stderr == ""
    # -v shows the log (the runtime's start-up line among it with -vv).
    told = _scriabin(
        "-vv", "classify", str(song), cwd=tmp_path, environment=_user_environment(tmp_path)
    )
    assert told.stdout == quiet.stdout
    assert "INFO classifier.service: classifier ready" in told.stderr
    assert "DEBUG classifier.litert: LiteRT: Created TensorFlow Lite XNNPACK" in told.stderr
    assert "\nINFO: Created" not in "\n" + told.stderr  # not printed raw by the runtime
    assert [path.name for path in tmp_path.iterdir()] == ["song.wav"]  # nothing left here


def test_an_unknown_model_still_gives_each_source_its_json_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_song(tmp_path / "song", seconds=4, fmt="wav")
    assert main(["classify", "--json", "--model", "nope", str(path), "https://x.example/"]) == 2
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["source"] for line in lines] == [str(path), "https://x.example/"]
    assert {line["code"] for line in lines} == {"unknown_model"}
    assert "no model called 'nope'" in lines[0]["error"]


def test_models_marks_the_model_the_settings_choose(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SCRIABIN_MODEL", "musicnn-genre")
    assert main(["models"]) == 0
    defaults = [line for line in capsys.readouterr().out.splitlines() if "(default)" in line]
    assert len(defaults) == 1 and defaults[0].startswith("musicnn-genre ")
    monkeypatch.setenv("SCRIABIN_MODEL", "nope")
    assert main(["models"]) == 2
    listing = capsys.readouterr()
    assert "(default)" not in listing.out
    assert "SCRIABIN_MODEL names 'nope', which is not among these models" in listing.err


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path: Path) -> None:
    scriabin = Path(sys.executable).with_name("scriabin")
    reading = subprocess.Popen(
        [str(scriabin), "models"],
        cwd=tmp_path,
        env=scriabin_environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reading.stdout is not None and reading.stderr is not None
    reading.stdout.close()  # as `| head -0` would, before `scriabin` writes its first line
    errors = reading.stderr.read().decode()
    assert reading.wait(timeout=120) == 1
    assert errors == ""


def test_feedback_stats_creates_no_file_anywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(tmp_path.rglob("*"))
    assert main(["feedback", "stats"]) == 0
    assert main(["feedback", "export"]) == 0
    assert capsys.readouterr().out.splitlines() == ["no feedback yet", "link,genre,votes"]
    assert sorted(tmp_path.rglob("*")) == before
