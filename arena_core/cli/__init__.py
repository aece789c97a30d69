"""The `arena` command (`arena_core.cli.main:main`): `main` parses and dispatches; one module per
command group holds its argument builders and its commands (`learn`, `cluster`, `datasets`,
`pairs`, `reports`, `views`). Only argparse is imported up front, so `arena --help` stays fast.
The package imports none of them, so they import each other without passing through it."""
