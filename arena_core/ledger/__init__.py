"""The ledger room: the tables (`tables`), the `Ledger` store and its claims (`store`), and the
schema migrations (`migrations`). Importing `arena_core.ledger` gives the names of both modules, as
the single module it used to be did."""

from arena_core.ledger.store import *  # noqa: F403
from arena_core.ledger.tables import *  # noqa: F403
