#!/usr/bin/env bash
# Run every benchmark; stdout gets one JSON line per benchmark, progress goes to stderr.
#   bash benchmarks/run_all.sh            (from the repo root, with the project installed)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
status=0
for name in engine_throughput latency_concurrency cold_start workers hf_batching api_concurrency learn_dpo; do
    echo "== $name" >&2
    "$PY" "benchmarks/$name.py" || status=$?
done
exit "$status"
