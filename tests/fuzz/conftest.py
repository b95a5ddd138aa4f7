"""Settings of the fuzz suite, and the lifetime of the real objects it mutates.

``SNAPVAULT_FUZZ_EXAMPLES`` sets the examples per decoder. Unset, it is the CI size (300),
derandomized so that every CI run tries the same inputs and cannot flake. The nightly run
(``nox -s fuzz`` sets 10000) draws fresh inputs every time; a failure prints the blob that
reproduces it (``@reproduce_failure``). No example database is written either way.
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, Phase, settings

from tests.fuzz.targets import close_shared

EXAMPLES = int(os.environ.get("SNAPVAULT_FUZZ_EXAMPLES", "300"))

settings.register_profile(
    "snapvault-fuzz",
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES <= 1000,
    database=None,
    print_blob=True,
    # Inputs are whole objects (a pack is 300 kB) mutated several times over: large and, with
    # tracemalloc on, slow by hypothesis's standards, and that is the point.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)
#: Applied to each fuzz test (not loaded as the global profile: other suites keep theirs).
FUZZ = settings.get_profile("snapvault-fuzz")


@pytest.fixture(scope="session", autouse=True)
def _fuzz_session() -> Iterator[None]:
    """Trace Python allocations for the memory bound (stopped afterwards: it slows everything),
    and remove the corpus's repositories from the memory filesystem at the end."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    yield
    if started:
        tracemalloc.stop()
    close_shared()
