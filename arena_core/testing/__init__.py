"""The plugin author's kit: conformance checks (`checks`: `check_agent`, `check_judge`,
`check_protocol`, `check_dataset`, `run_tournament`) and the pytest plugin (`pytest_plugin`:
fixtures). `arena_core.testing` keeps every name it had as one module."""

from arena_core.testing.checks import *  # noqa: F403
from arena_core.testing.checks import _run  # noqa: F401  (the pytest plugin's event-loop runner)
