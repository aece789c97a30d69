"""The `arena` command: `main` parses and dispatches; one module per command group holds its
argument builders and its commands (`run`/views in `main`, `learn`, `cluster`, `datasets`,
`pairs`, `reports`). Only argparse is imported up front, so `arena --help` stays fast."""

from arena_core.cli.main import main

__all__ = ["main"]
