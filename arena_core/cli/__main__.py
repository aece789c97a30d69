"""`python -m arena_core.cli …` is `arena …` (what `run --workers N` starts in each process)."""

from arena_core.cli.main import main

raise SystemExit(main())
