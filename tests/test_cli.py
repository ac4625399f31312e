"""The `scriabin` command: the JSON Lines contract, readable text, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from tests.audio_fixtures import write_song

pytest_plugins = ["tests.http_server"]


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
        assert len(obj["genres"]) == 10
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
    assert len(first["genres"]) == 10
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
    assert first.startswith("genre-fusion ") and first.endswith("(default)")
    assert "leave one artist out" in listing
    assert "EfficientAT mn04 (AudioSet); musicnn MSD (Million Song Dataset tags)" in listing


def test_unknown_model_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_song(tmp_path / "song", seconds=4, fmt="wav")
    assert main(["classify", "--model", "no-such-model", str(path)]) == 2
    assert "no model called 'no-such-model'" in capsys.readouterr().err
