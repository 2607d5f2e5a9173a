"""The PostgreSQL server tests marked ``postgres`` use, or a skip (a failure in CI).

CI starts one with .ci/postgres-up.sh, which exports CAPSWEEP_TEST_POSTGRES (a URL without
a password) and libpq's PGPASSWORD. Where services are required (``.ci/run`` exports
CAPSWEEP_REQUIRE_SERVICES=1; a ``CI`` variable counts too, see ``required_services``), a
missing server fails these tests instead of skipping them.
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy.engine import URL, make_url

from required_services import services_required


def postgres_server() -> URL:
    """The server's URL, without its password (libpq reads PGPASSWORD)."""
    url = os.environ.get("CAPSWEEP_TEST_POSTGRES")
    if url and os.environ.get("PGPASSWORD"):
        return make_url(url)
    if services_required():
        pytest.fail(
            "no PostgreSQL configured (CAPSWEEP_TEST_POSTGRES and PGPASSWORD), and the "
            "services are required here: .ci/run starts one with .ci/postgres-up.sh"
        )
    pytest.skip('no PostgreSQL configured (eval "$(bash .ci/postgres-up.sh)" starts one)')
