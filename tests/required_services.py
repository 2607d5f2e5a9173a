"""Whether a missing service (PostgreSQL, Slurm) fails the tests that need it, or skips them.

On a laptop a test needing a service that is not there is skipped, with the reason. In CI
it must fail instead: a CI run that lost its server would otherwise pass with the tests
that matter skipped. ``.ci/run`` exports ``CAPSWEEP_REQUIRE_SERVICES=1`` for that; a
``CI`` variable (set by most CI systems) counts too.
"""

from __future__ import annotations

import os

REQUIRE_SERVICES = "CAPSWEEP_REQUIRE_SERVICES"
_OFF = ("", "0", "false")


def services_required() -> bool:
    """Whether ``CAPSWEEP_REQUIRE_SERVICES`` or ``CI`` asks for every service to be there."""
    return any(os.environ.get(name, "").lower() not in _OFF for name in (REQUIRE_SERVICES, "CI"))
