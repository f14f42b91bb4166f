from __future__ import annotations

from pathlib import Path

import pytest

from app.config import Environment, Settings, SettingsError


def test_production_without_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOSTRADOR_ENV", "production")
    monkeypatch.delenv("MOSTRADOR_SECRET_KEY", raising=False)
    with pytest.raises(ValueError, match="MOSTRADOR_SECRET_KEY is required"):
        Settings()


@pytest.mark.parametrize("secret", ["short", "changeme", "x" * 31])
def test_production_with_weak_secret_is_refused(monkeypatch: pytest.MonkeyPatch, secret: str) -> None:
    monkeypatch.setenv("MOSTRADOR_ENV", "production")
    monkeypatch.setenv("MOSTRADOR_SECRET_KEY", secret)
    with pytest.raises(ValueError, match="too weak"):
        Settings()


def test_production_with_strong_secret_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOSTRADOR_ENV", "production")
    monkeypatch.setenv("MOSTRADOR_SECRET_KEY", "k" * 12 + "A7f3-9QzLm0pXw2Rt8YvBn5Cs")
    settings = Settings()
    assert settings.is_production
    assert settings.with_dev_secret().secret_key == settings.secret_key


def test_development_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    settings = Settings(env=Environment.development, secret_key=None, data_dir=tmp_path / "data")
    first = settings.with_dev_secret()
    second = Settings(
        env=Environment.development, secret_key=None, data_dir=tmp_path / "data"
    ).with_dev_secret()
    assert first.secret_key and len(first.secret_key) >= 32
    assert second.secret_key == first.secret_key
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o077 == 0  # readable by its owner only


def test_urls_use_their_usual_unprefixed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db:5432/x")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("MOSTRADOR_WHATSAPP_DRIVER", "simulator")
    settings = Settings()
    assert settings.require_urls() == ("postgresql://u@db:5432/x", "redis://cache:6379/0")
    assert settings.whatsapp_driver.value == "simulator"


def test_process_commands_say_which_url_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/0")
    with pytest.raises(SettingsError, match=r"^DATABASE_URL must be set"):
        Settings().require_urls()


def test_unknown_driver_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOSTRADOR_WHATSAPP_DRIVER", "baileys")
    with pytest.raises(ValueError, match="whatsapp_driver"):
        Settings()
