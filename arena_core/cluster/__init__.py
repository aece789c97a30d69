"""Beyond one process: workers on a shared ledger (`worker`), SLURM arrays (`slurm`) and the
merge of SQLite shards (`merge`)."""
