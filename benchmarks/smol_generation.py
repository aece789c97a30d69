"""SmolLM2-135M-Instruct: tokens per second for 16 concurrent requests batched versus one at a time.

The real model (`arena model smollm2`, built into a temp dir unless `--model DIR` names a built
one) on the CPU, float32, with the same requests as `hf_batching.py` (real
debate speech prompts on `--matches` bundled items, greedy, sent concurrently so the agent's batcher
gathers them into one left-padded `generate` call, versus awaited one after another). Unlike the
tiny random model, SmolLM2 ends speeches early (end of turn), so rows of a batch finish at
different steps; the token count is what was generated, the same in both modes (checked). Also
the peak resident memory of the process (`ru_maxrss`). The figure is sequential wall / batched
wall, the modes interleaved run by run (`hf_batching.measure`, `_harness.compare`), median and
range over `--runs` (at least 3), with the machine's load; the warm-up is one short request (a
full warm-up round, as hf_batching.py does, costs minutes of a shared 2-core machine). Target:
batched >= 4x (the median). Each run of both modes takes minutes on a shared 2-core CPU.

Prefill costs the same batched or not, and a speech prompt is ~600 tokens (system prompt,
passage, question), so the ratio grows with the tokens generated per request: `--new-tokens 300`
is what the debate protocol asks for a speech.

    python benchmarks/smol_generation.py [--model models/smollm2] [--matches 16] [--new-tokens 128]
        [--prompts speech|question] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import emit, log, machine_load
from _smol import smol_dir
from hf_batching import measure, requests

TARGET = 4.0


def prompts(matches: int, new_tokens: int, kind: str) -> list:
    """hf_batching's speech requests; with kind "question", without the passage (~100 tokens
    instead of ~600: the figure for generation that prefill does not dominate)."""
    from arena_plugins.protocols.prompts import DEBATER_SYSTEM, render

    reqs = requests(matches, new_tokens)
    if kind == "speech":
        return reqs
    out = []
    for r in reqs:
        obs = r.observation.model_copy(update={"context": None})
        msgs = render(obs, DEBATER_SYSTEM, "Debater A")
        out.append(r.model_copy(update={"observation": obs, "messages": msgs}))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a directory written by `arena model smollm2`")
    ap.add_argument("--matches", type=int, default=16, help="concurrent requests")
    ap.add_argument("--new-tokens", type=int, default=128, help="budget per request")
    ap.add_argument("--prompts", choices=["speech", "question"], default="speech")
    ap.add_argument("--runs", type=int, default=3, help="interleaved runs of each mode")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch default)")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from arena_plugins.agents.hf_agent import HFAgent, HFOptions

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="arena-smol-") as tmp:
        path = smol_dir(args.model, tmp)
        agent = HFAgent(
            HFOptions(model=str(path), max_batch=args.matches, gather_ms=5, min_new_tokens=0)
        )
        reqs = prompts(args.matches, args.new_tokens, args.prompts)
        fig = measure(agent, reqs, args.runs, warm_round=False)
        sizes = agent.model.batcher("generate", args.matches, 5).sizes
        asyncio.run(agent.aclose())
    log(
        f"batched {fig['batched_tok_s']:.1f} tok/s, sequential {fig['sequential_tok_s']:.1f} "
        f"tok/s, speedup {fig['speedup']}"
    )
    emit(
        {
            "benchmark": "smol_generation",
            "load": machine_load(),
            "model": args.model or "SmolLM2-135M-Instruct (GGUF Q4_1 dequantised), float32",
            "device": "cpu",
            "torch_threads": torch.get_num_threads(),
            "matches": args.matches,
            "prompts": args.prompts,
            **fig,
            "target": TARGET,
            "pass": fig["speedup"]["median"] >= TARGET and fig["same_output"],
            "largest_batch": max(sizes),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "total_wall_s": round(time.perf_counter() - t0, 1),
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
