"""Scriabin's one settings object: defaults from config/defaults.toml, then .env, then the
environment (SCRIABIN_* plus DISCORD_TOKEN and TELEGRAM_TOKEN), then explicit arguments."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_DIR = Path(__file__).resolve().parent
DEFAULTS_FILE = CONFIG_DIR / "defaults.toml"
PROJECT_ROOT = CONFIG_DIR.parent
# A built package (a wheel, `pip install .`, the Docker image) carries the models as the package
# data `scriabin_models` beside `config`; a checkout, editable installs included, has models/.
INSTALLED_MODELS_DIR = PROJECT_ROOT / "scriabin_models"
DEFAULT_MODELS_DIR = (
    INSTALLED_MODELS_DIR if INSTALLED_MODELS_DIR.is_dir() else PROJECT_ROOT / "models"
)
DATABASE_NAME = "scriabin.sqlite3"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def default_data_dir() -> Path:
    """Where Scriabin keeps its own files unless SCRIABIN_DATA_DIR says otherwise: the user's
    data folder (~/.local/share/scriabin, or $XDG_DATA_HOME/scriabin, on Linux), never the
    working directory."""
    import platformdirs

    return platformdirs.user_data_path("scriabin", appauthor=False)


class Settings(BaseSettings):
    """Everything that can be tuned without touching code.

    Defaults live in config/defaults.toml only, never twice: a setting without a default there
    is required, except the optional ones (None) and the paths that depend on where the
    project is installed.
    """

    model_config = SettingsConfigDict(
        env_prefix="SCRIABIN_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        frozen=True,
    )

    models_dir: Path = Field(DEFAULT_MODELS_DIR, description="Folder of model files and cards")
    model: str | None = Field(None, description="Model name; empty picks the best measured one")

    max_duration_s: float = Field(gt=0, description="Longest media accepted, in seconds")
    max_download_mb: float = Field(gt=0, description="Largest download accepted, in MB")
    network_timeout_s: float = Field(gt=0, description="Longest wait for any one network read")
    request_timeout_s: float = Field(
        gt=0, description="Deadline of a whole request: metadata, pages, media and decoding"
    )
    cookies_file: Path | None = Field(
        None, description="Netscape cookies file for yt-dlp (a secret: never logged)"
    )
    allow_private_networks: bool = Field(
        description="Allow links to private/loopback addresses (self-hosting, tests)"
    )
    allowed_networks: Annotated[tuple[str, ...], NoDecode] = Field(
        description="CIDRs allowed although private, comma-separated in the environment"
    )

    max_segments: int = Field(ge=1, description="Segments analysed per song, spread evenly")
    workers: int = Field(ge=1, description="Worker threads running the pipeline")
    queue_size: int = Field(ge=0, description="Requests that may wait beyond busy workers")
    cache_size: int = Field(ge=0, description="Recent link results kept in memory")
    busy_after_s: float = Field(
        gt=0, description="Expected wait for a worker above which a request is told 'busy'"
    )

    broker_url: str | None = Field(
        None,
        description="Redis URL of the Celery broker, results and shared state; empty: in-process",
    )
    cache_ttl_s: float = Field(gt=0, description="How long shared results are kept (scale-out)")
    upload_ttl_s: float = Field(gt=0, description="How long an upload waits in Redis for a worker")
    upload_budget_mb: float = Field(
        gt=0, description="Upload bytes that may wait in Redis at once; beyond: 'busy' (scale-out)"
    )
    worker_threads: int = Field(
        ge=0,
        description="CPU threads of each worker (pool thread or job process); 0: cores / workers",
    )

    cooldown_s: float = Field(ge=0, description="Per-user pause between requests")
    uncertain_below: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Top confidence under which a reply says it is unsure; empty: the model's",
    )

    discord_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("DISCORD_TOKEN", "SCRIABIN_DISCORD_TOKEN", "discord_token"),
        description="Discord bot token (env DISCORD_TOKEN)",
    )
    discord_api_url: str | None = Field(
        None, description="Discord API base URL, for testing and proxies only"
    )
    discord_guild_id: int | None = Field(
        None, description="Sync slash commands to this one server (instant, for development)"
    )
    discord_max_upload_mb: float = Field(gt=0, description="Largest Discord attachment")
    discord_shards: int = Field(
        ge=-1, description="Discord shards in this process: 0 one connection, -1 Discord's advice"
    )
    discord_message_content: bool = Field(
        description="Use Discord's privileged Message Content intent (link autodetect needs it)",
    )
    telegram_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices(
            "TELEGRAM_TOKEN", "SCRIABIN_TELEGRAM_TOKEN", "telegram_token"
        ),
        description="Telegram bot token (env TELEGRAM_TOKEN)",
    )
    telegram_api_url: str = Field(description="Bot API base URL (self-hosted servers)")
    telegram_file_url: str = Field(description="Bot API file base URL")
    telegram_max_upload_mb: float = Field(
        gt=0, description="Largest Telegram upload the Bot API lets the bot download"
    )
    telegram_webhook_url: str | None = Field(
        None,
        description="Public HTTPS URL Telegram posts updates to (webhook mode); empty: polling",
    )
    telegram_webhook_listen: str = Field(description="Address the webhook server listens on")
    telegram_webhook_port: int = Field(
        ge=1, le=65535, description="Port the webhook server listens on, behind the proxy"
    )
    telegram_webhook_secret: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices(
            "TELEGRAM_WEBHOOK_SECRET", "SCRIABIN_TELEGRAM_WEBHOOK_SECRET", "telegram_webhook_secret"
        ),
        description="Secret Telegram sends with every webhook post; empty: a new one per start",
    )
    data_dir: Path = Field(
        description="Folder of Scriabin's own files (the SQLite database); empty: the user's"
    )
    database_path: Path = Field(
        description="SQLite file for per-server bot preferences and feedback; empty: in data_dir"
    )
    log_level: str | None = Field(
        None,
        description="Logging level; empty: WARNING for terminal commands, INFO for services",
    )

    @field_validator(
        "model",
        "uncertain_below",
        "broker_url",
        "telegram_webhook_url",
        "telegram_webhook_secret",
        "log_level",
        mode="before",
    )
    @classmethod
    def _empty_means_default(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="before")
    @classmethod
    def _files_in_data_dir(cls, values: object) -> object:
        # Empty paths mean the defaults, which depend on the user: found here, not in the file.
        if isinstance(values, dict):
            values = dict(values)
            if not values.get("data_dir"):
                values["data_dir"] = default_data_dir()
            if not values.get("database_path"):
                values["database_path"] = Path(values["data_dir"]) / DATABASE_NAME
        return values

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str | None) -> str | None:
        if value is not None and value.upper() not in LOG_LEVELS:
            raise ValueError(f"use one of {', '.join(LOG_LEVELS)}, or leave it empty")
        return None if value is None else value.upper()

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _webhook_secret_chars(cls, value: SecretStr | None) -> SecretStr | None:
        # Telegram's rule for secret_token.
        if value is not None and not re.fullmatch(
            r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()
        ):
            raise ValueError("use 1-256 characters among A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("telegram_webhook_url")
    @classmethod
    def _webhook_url_absolute(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"https?://[^/]+", value):
            raise ValueError("give the whole public URL, such as https://bot.example.com/telegram")
        return value

    @field_validator("allowed_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        for network in value or ():
            ipaddress.ip_network(network, strict=False)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=DEFAULTS_FILE),
        )

    @property
    def max_download_bytes(self) -> int:
        return int(self.max_download_mb * 1024 * 1024)

    @property
    def upload_budget_bytes(self) -> int:
        return int(self.upload_budget_mb * 1024 * 1024)

    @property
    def threads_per_worker(self) -> int:
        """CPU threads each worker's model calls may use: `worker_threads`, else this
        machine's cores shared among the workers, so that busy workers never fight over them."""
        if self.worker_threads:
            return self.worker_threads
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        return max(1, (cores or os.cpu_count() or 1) // self.workers)


def load_settings(**overrides: object) -> Settings:
    """Read the settings once at start; explicit overrides win over every other source."""
    return Settings(**overrides)
