"""Shared test fixtures: settings isolated from the developer's environment, the shared data
folder (skipped cleanly when ../shared is absent), and one warmed classifier service."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.logs import QUIET_LOGGERS
from config import PROJECT_ROOT, Settings, load_settings
from tests.support.redis_server import RedisServer, need_redis_server

SHARED_DIR = PROJECT_ROOT.parent / "shared"
GTZAN_MINI = SHARED_DIR / "data" / "gtzan-mini"
SEED_MODEL = SHARED_DIR / "seed-model" / "music_genre_cnn.hdf5"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# This test run's own temporary folder, so that what it leaves behind is its own (another run
# on the same machine has another); downloads go there unless a test says otherwise.
RUN_TEMP = Path(tempfile.mkdtemp(prefix="tests-tmp-"))
tempfile.tempdir = str(RUN_TEMP)


@pytest.fixture(scope="session", autouse=True)
def _run_temp() -> Iterator[None]:
    yield
    shutil.rmtree(RUN_TEMP, ignore_errors=True)


@pytest.fixture(autouse=True)
def _no_download_left_behind() -> Iterator[None]:
    """Every test leaves the temporary folder as it found it: no `scriabin-*` download."""
    before = set(RUN_TEMP.glob("scriabin-*"))
    yield
    left = set(RUN_TEMP.glob("scriabin-*")) - before
    assert not left, f"temporary files left behind: {sorted(map(str, left))}"


@pytest.fixture
def temp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where this test's temporary folders go, to check that none is left."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's tokens, .env or SCRIABIN_* settings."""
    for name in list(os.environ):
        if name.startswith("SCRIABIN_") or name in ("DISCORD_TOKEN", "TELEGRAM_TOKEN"):
            monkeypatch.delenv(name)
    # Nor writes to the developer's own data folder (the default SQLite file lives there).
    monkeypatch.setenv("SCRIABIN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def _restored_logging() -> Iterator[None]:
    """Tests that run `scriabin` in-process get its logging setup; the next test does not."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for tests: the local test servers live on 127.0.0.1, so private is allowed."""
    return load_settings(
        allow_private_networks=True,
        cooldown_s=0,
        database_path=tmp_path / "scriabin.sqlite3",
    )


@pytest.fixture
def gtzan_mini() -> Path:
    if not GTZAN_MINI.is_dir():
        pytest.skip("../shared/data/gtzan-mini is not beside the project")
    return GTZAN_MINI


@pytest.fixture
def seed_model() -> Path:
    if not SEED_MODEL.is_file():
        pytest.skip("../shared/seed-model is not beside the project")
    return SEED_MODEL


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    need_redis_server()
    server = RedisServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    need_redis_server()
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()
