"""Passwords in storage and tracking URLs are hidden; everything else is left as written."""

from __future__ import annotations

import pytest

from capsweep.redaction import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://capsweep:secret@db:5432/capsweep", "postgresql://capsweep:***@db:5432/capsweep"),
        ("postgresql://db/capsweep?password=secret&sslmode=require", "postgresql://db/capsweep?password=***&sslmode=require"),
        ("http://user:secret@mlflow:5000", "http://user:***@mlflow:5000"),
    ],
)  # fmt: skip
def test_a_password_is_replaced(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "secret" not in redact_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////tmp/outputs/mlflow.db",  # an empty host urlunsplit would drop
        "sqlite:///outputs/mlflow.db",
        "postgresql://capsweep@db/capsweep?sslmode=require",
        "outputs/optuna/capacity.journal",
    ],
)
def test_a_url_without_a_password_is_left_as_written(url: str) -> None:
    assert redact_url(url) == url
