"""Passwords in storage and tracking URLs are hidden; everything else is left as written."""

from __future__ import annotations

import pytest

from capsweep.redaction import has_password, redact_text, redact_url


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


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("postgresql+psycopg://capsweep:p%40ss%3Aword@db/capsweep", "p%40ss"),  # percent-encoded
        ("https://mlflow.example/api?token=abc123", "abc123"),
        ("postgresql://db/capsweep?sslmode=require&PASSWORD=abc123", "abc123"),
    ],
)
def test_a_password_is_hidden_however_the_url_spells_it(url: str, secret: str) -> None:
    assert secret not in redact_url(url)
    assert "***" in redact_url(url)


@pytest.mark.parametrize(
    ("url", "plain"),
    [
        ("postgresql://capsweep:secret@db/capsweep", True),
        ("postgresql://db/capsweep?password=secret", True),
        ("postgresql://capsweep:${oc.env:CAPSWEEP_DB_PASSWORD}@db/capsweep", False),
        ("postgresql://capsweep@db/capsweep", False),
        ("outputs/optuna/capacity.journal", False),
    ],
)
def test_a_password_written_in_plain_text_is_told_from_one_read_from_the_environment(
    url: str, plain: bool
) -> None:
    assert has_password(url) is plain


def test_an_error_text_quoting_a_url_loses_its_password() -> None:
    url = "http://alice:s3cr%40t@mlflow.example:5000"
    error = "API request to http://alice:s3cr%40t@mlflow.example:5000/api failed; s3cr@t"
    assert "s3cr" not in redact_text(error, url, "outputs/optuna/s.journal")


def test_a_url_sqlalchemy_cannot_parse_is_still_hidden() -> None:
    assert "s3cret" not in redact_url("postgresql://u:s3cret@db:notaport/capsweep")
