"""One settings object: defaults file, .env, environment, explicit overrides; documented."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from config import PROJECT_ROOT, Settings, load_settings


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
