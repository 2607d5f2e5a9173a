"""Hide the password in a storage or tracking URL before it is logged, tagged or shown.

URLs are parsed by SQLAlchemy (which Optuna's and MLflow's database stores use), so a URL
is read here exactly as the stores read it: percent-encoded passwords, driver names
(``postgresql+psycopg://``) and secrets in the query string included.
"""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

# Query parameters that carry a secret (libpq's password, a token).
SECRET_PARAMETERS = frozenset({"password", "passwd", "pwd", "sslpassword", "token", "access_token"})
HIDDEN = "***"


def redact_url(url: str) -> str:
    """``url`` with any password (in its user part or query) replaced by ``***``.

    A plain path, or a URL with nothing secret in it, is returned as written.
    """
    if "://" not in url:
        return url
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # not a URL SQLAlchemy reads (a bad port, say)
        return url.split("://", 1)[0] + "://" + HIDDEN
    secret_keys = [key for key in parsed.query if key.lower() in SECRET_PARAMETERS]
    if parsed.password is None and not secret_keys:
        return url
    hidden: URL = (
        parsed.update_query_dict(dict.fromkeys(secret_keys, HIDDEN)) if secret_keys else parsed
    )
    return hidden.render_as_string(hide_password=True).replace("%2A", "*")


def has_password(url: str) -> bool:
    """Whether ``url`` carries a password in plain text (not an unresolved ``${...}``)."""
    if "://" not in url:
        return False
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return "@" in url.split("://", 1)[1].split("/", 1)[0]
    secrets = [
        parsed.password,
        *(parsed.query[k] for k in parsed.query if k.lower() in SECRET_PARAMETERS),
    ]
    return any(secret is not None and "${" not in str(secret) for secret in secrets)


def secrets_of(url: str) -> list[str]:
    """The passwords written in ``url`` (user part and query), as written and decoded."""
    if "://" not in url:
        return []
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return []
    found = [
        parsed.password,
        *(parsed.query[k] for k in parsed.query if k.lower() in SECRET_PARAMETERS),
    ]
    secrets = {str(secret) for secret in found if secret}
    return sorted(secrets | {quote(secret, safe="") for secret in secrets}, key=len, reverse=True)


def redact_text(text: str, *urls: str) -> str:
    """``text`` (an error message, say) with the passwords of ``urls`` replaced by ``***``.

    Libraries quote the URL they failed to reach in their errors, password included.
    """
    for url in urls:
        for secret in secrets_of(url):
            text = text.replace(secret, HIDDEN)
    return text
