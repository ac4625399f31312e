"""One settings object: defaults file, .env, environment, explicit overrides; documented."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from config import PROJECT_ROOT, Settings, default_data_dir, load_settings


def test_defaults_come_from_the_defaults_file() -> None:
    settings = load_settings()
    assert settings.max_duration_s == 1200
    assert settings.max_download_mb == 50
    assert settings.model is None
    assert settings.discord_token is None and settings.telegram_token is None


def test_environment_and_dotenv_override_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("SCRIABIN_WORKERS=3\nTELEGRAM_TOKEN=123:abc\n")
    monkeypatch.setenv("SCRIABIN_MAX_DURATION_S", "60")
    monkeypatch.setenv("SCRIABIN_ALLOWED_NETWORKS", "10.1.0.0/16, 192.168.5.5/32")
    monkeypatch.setenv("DISCORD_TOKEN", "discord-secret-token")
    settings = load_settings()
    assert settings.workers == 3
    assert settings.max_duration_s == 60
    assert settings.allowed_networks == ("10.1.0.0/16", "192.168.5.5/32")
    assert settings.telegram_token is not None
    assert settings.telegram_token.get_secret_value() == "123:abc"
    assert "discord-secret-token" not in repr(settings)
    assert load_settings(workers=5).workers == 5


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRIABIN_ALLOWED_NETWORKS", "not-a-network")
    with pytest.raises(ValidationError):
        load_settings()


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        env = {"discord_token": "DISCORD_TOKEN", "telegram_token": "TELEGRAM_TOKEN"}.get(
            name, f"SCRIABIN_{name.upper()}"
        )
        assert f"`{env}`" in readme, f"{env} is missing from the README's settings table"


def test_webhook_settings_telegram_would_refuse_are_settings_errors() -> None:
    with pytest.raises(ValueError, match="A-Z, a-z, 0-9"):
        load_settings(telegram_webhook_secret="has spaces and ünïcode")
    with pytest.raises(ValueError, match="whole public URL"):
        load_settings(telegram_webhook_url="/telegram")
    good = load_settings(
        telegram_webhook_url="https://bot.example.com/t", telegram_webhook_secret=""
    )
    assert good.telegram_webhook_secret is None  # empty: a new one per start


def test_the_database_lives_in_the_data_folder_never_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SCRIABIN_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    settings = load_settings()
    assert settings.data_dir == default_data_dir()
    if sys.platform.startswith("linux"):
        assert settings.data_dir == tmp_path / "xdg" / "scriabin"
    assert settings.database_path == settings.data_dir / "scriabin.sqlite3"
    assert settings.database_path.is_absolute()
    monkeypatch.setenv("SCRIABIN_DATA_DIR", str(tmp_path / "elsewhere"))
    assert load_settings().database_path == tmp_path / "elsewhere" / "scriabin.sqlite3"
    monkeypatch.setenv("SCRIABIN_DATABASE_PATH", str(tmp_path / "bot.db"))
    assert load_settings().database_path == tmp_path / "bot.db"


def test_a_log_level_must_be_a_real_one(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().log_level is None  # WARNING at a terminal, INFO for services
    monkeypatch.setenv("SCRIABIN_LOG_LEVEL", "debug")
    assert load_settings().log_level == "DEBUG"
    monkeypatch.setenv("SCRIABIN_LOG_LEVEL", "loud")
    with pytest.raises(ValidationError, match="DEBUG, INFO, WARNING"):
        load_settings()
