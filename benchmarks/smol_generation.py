"""SmolLM2-135M-Instruct: tokens per second for 16 concurrent requests batched versus one at a time.

The real model (`arena model smollm2`, built into a temp dir unless `--model DIR` names a built
one) on the CPU, float32, with the same requests as `hf_batching.py` (real
debate speech prompts on `--matches` bundled items, greedy, sent concurrently so the agent's batcher
gathers them into one left-padded `generate` call, versus awaited one after another). Unlike the
tiny random model, SmolLM2 ends speeches early (end of turn), so rows of a batch finish at
different steps; the token count is what was generated, the same in both modes (checked). Also
the peak resident memory of the process (`ru_maxrss`). Target: batched >= 4x. One run of each
mode after a one-request warm-up (a full warm-up round, as hf_batching.py does, costs minutes of
a shared 2-core machine); run it on a quiet machine, the ratio moves with contention.

Prefill costs the same batched or not, and a speech prompt is ~600 tokens (system prompt,
passage, question), so the ratio grows with the tokens generated per request: `--new-tokens 300`
is what the debate protocol asks for a speech.

    python benchmarks/smol_generation.py [--model models/smollm2] [--matches 16] [--new-tokens 128]
        [--prompts speech|question]
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

from _harness import emit, log
from _smol import smol_dir
from hf_batching import requests

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


def measure(agent, matches: int, new_tokens: int, kind: str = "speech") -> dict:
    """Wall time of the same requests sent concurrently (batched) and one after another."""
    reqs = prompts(matches, new_tokens, kind)
    prompt_tokens = [len(agent.prompt_ids(r.messages)) for r in reqs]

    async def batched() -> list:
        return [o[0] for o in await asyncio.gather(*(agent.respond([r]) for r in reqs))]

    async def sequential() -> list:
        return [(await agent.respond([r]))[0] for r in reqs]

    def timed(fn) -> tuple[float, list]:
        t0 = time.perf_counter()
        out = asyncio.run(fn())
        return time.perf_counter() - t0, out

    warm = requests(1, 4)[0]
    asyncio.run(agent.respond([warm]))
    b_wall, b_out = timed(batched)
    log(f"batched: {b_wall:.1f}s")
    s_wall, s_out = timed(sequential)
    log(f"sequential: {s_wall:.1f}s")
    tokens = sum(r.tokens for r in b_out)
    return {
        "new_tokens": new_tokens,
        "prompt_tokens_mean": round(sum(prompt_tokens) / len(prompt_tokens)),
        "tokens": tokens,
        "batched_s": round(b_wall, 2),
        "sequential_s": round(s_wall, 2),
        "batched_tok_s": round(tokens / b_wall, 2),
        "sequential_tok_s": round(tokens / s_wall, 2),
        "speedup": round(s_wall / b_wall, 2),
        "same_output": [r.texts for r in b_out] == [r.texts for r in s_out],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a directory written by `arena model smollm2`")
    ap.add_argument("--matches", type=int, default=16, help="concurrent requests")
    ap.add_argument("--new-tokens", type=int, default=128, help="budget per request")
    ap.add_argument("--prompts", choices=["speech", "question"], default="speech")
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
        fig = measure(agent, args.matches, args.new_tokens, args.prompts)
        sizes = agent.model.batcher("generate", args.matches, 5).sizes
        asyncio.run(agent.aclose())
    log(
        f"batched {fig['batched_tok_s']:.1f} tok/s, sequential {fig['sequential_tok_s']:.1f} "
        f"tok/s, speedup {fig['speedup']:.2f}x"
    )
    emit(
        {
            "benchmark": "smol_generation",
            "model": "SmolLM2-135M-Instruct (GGUF Q4_1 dequantised), float32",
            "device": "cpu",
            "torch_threads": torch.get_num_threads(),
            "matches": args.matches,
            "prompts": args.prompts,
            **fig,
            "target": TARGET,
            "pass": fig["speedup"] >= TARGET and fig["same_output"],
            "largest_batch": max(sizes),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "wall_s": round(time.perf_counter() - t0, 1),
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
