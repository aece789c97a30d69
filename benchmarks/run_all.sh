#!/usr/bin/env bash
# Run every light benchmark; stdout gets one JSON line per benchmark, progress goes to stderr.
#   bash benchmarks/run_all.sh            (from the repo root, with the project installed)
# A missed target is `"pass": false` in a script's line, not an exit code: each script exits 0
# when it measured. The exit status is non-zero only when a script could not run (a crash, a
# missing dependency such as PostgreSQL for workers.py or `[hf]` for hf_batching.py); the
# others still run. The SmolLM2 benchmarks (smol_*.py, learn_sppo, learn_d2po, learn_safe_rlhf,
# learn_reward, apo_iteration) take minutes to an hour of CPU each: run them by hand, one at a
# time (see README.md). scale.py runs here without its million-match size (minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
BENCHMARKS=(
    "engine_throughput"
    "latency_concurrency"
    "api_concurrency"
    "debate_loop"
    "cold_start"
    "ratings"
    "quotes_cold"
    "quotes_spoofing"
    "quotes_long --split tune"
    "trust_concurrency"
    "workers"
    "scale --sizes 2000,20000,100000"
    "hf_batching"
    "learn_dpo"
)
status=0
for entry in "${BENCHMARKS[@]}"; do
    read -r name args <<<"$entry"
    echo "== $name $args" >&2
    # shellcheck disable=SC2086  # the arguments are words
    "$PY" "benchmarks/$name.py" $args || status=$?
done
exit "$status"
