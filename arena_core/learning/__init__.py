"""Learning from the ledger: preference data (`pairs`), learner runs with lineage (`learn`) and
the run -> learn -> run loop (`loop`)."""
