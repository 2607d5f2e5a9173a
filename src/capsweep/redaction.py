"""Hide the password in a storage or tracking URL before it is logged, tagged or shown."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters that carry a secret (libpq's password, a token).
_SECRET_PARAMETERS = frozenset({"password", "passwd", "pwd", "token", "access_token"})


def redact_url(url: str) -> str:
    """``url`` with any password (in its user part or query) replaced by ``***``.

    A plain path is returned as it is.
    """
    if "://" not in url:
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if parts.password is None and not any(k.lower() in _SECRET_PARAMETERS for k, _ in query):
        return url  # as written: urlunsplit would drop the empty host of sqlite:////path
    if parts.password is not None:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    if any(key.lower() in _SECRET_PARAMETERS for key, _ in query):
        hidden = [(k, "***" if k.lower() in _SECRET_PARAMETERS else v) for k, v in query]
        parts = parts._replace(query=urlencode(hidden, safe="*"))
    return urlunsplit(parts)
