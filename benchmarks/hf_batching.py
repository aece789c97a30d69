"""transformers agent: tokens per second for concurrent matches batched versus one at a time.

A tiny Llama built into a temp dir by `build_tiny_llama` (2 layers, hidden 64, random weights, a
2000-token BPE vocabulary so that prompts are about as long as a real tokenizer makes them, ~570
tokens; with 512 tokens they grow to ~830), on the CPU with one torch thread: on a small shared
machine, OpenMP threads spinning while other processes hold the cores make every small op ~20x
slower in both modes, which measures the scheduler rather than batching (`--threads 0` keeps
torch's default).

The requests are real debate speech prompts (system prompt, bundled passage, question, answers)
for `--matches` different items, each asking for `--new-tokens` tokens: 300 is what the debate
protocol asks for a speech (2 x max_words 150). Batched: all requests sent concurrently, as
`--matches` matches in flight would, so the agent's batcher gathers them into one left-padded
`generate` call. Sequential: the same requests awaited one after another. Greedy decoding and a
random model that never ends early, so both modes generate the same tokens (checked). The figure
is the ratio sequential wall / batched wall (= the ratio of tokens per second), the two modes
interleaved run by run after a warm-up round (`_harness.compare`), median and range over
`--runs` (at least 3), with the machine's load. Target: batched >= 4x (the median).

For information the same is measured with `--short-tokens` (64) new tokens: there the prompt's
prefill, which costs the same batched or not (more, with the padding mask, on CPU SDPA), is a
larger share and the ratio is lower.

    python benchmarks/hf_batching.py [--matches 16] [--new-tokens 300] [--short-tokens 64]
        [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import compare, emit, log, machine_load

TARGET = 4.0


def requests(n: int, new_tokens: int) -> list:
    from arena_plugins.datasets.files import BundledOptions, bundled_source
    from arena_plugins.protocols.prompts import DEBATER_SYSTEM, render

    from arena_core.types import Observation, Request

    items = list(bundled_source(BundledOptions()).items())
    out = []
    for i in range(n):
        item = items[i % len(items)]
        obs = Observation(
            seat="A",
            phase="speech",
            item_id=item.id,
            question=item.question,
            answers=list(item.answers),
            my_answer=0,
            opponent_answer=1,
            context=item.context,
            max_words=150,
        )
        out.append(
            Request(
                messages=render(obs, DEBATER_SYSTEM, "Debater A"),
                observation=obs,
                max_tokens=new_tokens,
                seed=i,
            )
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--matches", type=int, default=16, help="concurrent matches (requests)")
    ap.add_argument("--new-tokens", type=int, default=300, help="per request (main figure)")
    ap.add_argument("--short-tokens", type=int, default=64, help="per request (second figure)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch default)")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from arena_plugins.agents.hf_agent import HFAgent, HFOptions
    from arena_plugins.agents.tiny_model import build_tiny_llama

    with tempfile.TemporaryDirectory(prefix="arena-tiny-") as tmp:
        path = build_tiny_llama(Path(tmp) / "tiny", hidden=args.hidden, vocab_size=args.vocab)
        agent = HFAgent(
            HFOptions(model=str(path), max_batch=args.matches, gather_ms=5, min_new_tokens=0)
        )
        figures = [
            measure(agent, requests(args.matches, n), args.runs)
            for n in (args.new_tokens, args.short_tokens)
        ]
        sizes = agent.model.batcher("generate", args.matches, 5).sizes
        asyncio.run(agent.aclose())
    main_fig, short = figures
    log(
        f"{args.new_tokens} tokens: batched {main_fig['batched_tok_s']:.0f} tok/s, sequential "
        f"{main_fig['sequential_tok_s']:.0f} tok/s, speedup {main_fig['speedup']}"
    )
    emit(
        {
            "benchmark": "hf_batching",
            "load": machine_load(),
            "model": f"tiny llama, 2 layers, hidden {args.hidden}, vocab {args.vocab}, random",
            "device": "cpu",
            "torch_threads": torch.get_num_threads(),
            "matches": args.matches,
            **main_fig,
            "target": TARGET,
            "pass": main_fig["speedup"]["median"] >= TARGET and main_fig["same_output"],
            "largest_batch": max(sizes),
            "short": short,
        }
    )
    return 0


def measure(agent, reqs: list, runs: int, *, warm_round: bool = True) -> dict:
    """Batched and sequential walls of the same requests, interleaved run by run after a
    warm-up (a batched round; with `warm_round=False` one short request, for a model where a
    round costs minutes): each mode's median and range, and sequential / batched run by run."""
    prompt_tokens = [len(agent.prompt_ids(r.messages)) for r in reqs]

    async def batched() -> list:
        return [o[0] for o in await asyncio.gather(*(agent.respond([r]) for r in reqs))]

    async def sequential() -> list:
        return [(await agent.respond([r]))[0] for r in reqs]

    outputs: dict[str, list] = {}

    def timed(mode: str, fn) -> float:
        t0 = time.perf_counter()
        out = asyncio.run(fn())
        seconds = time.perf_counter() - t0
        outputs.setdefault(mode, out)
        return seconds

    if warm_round:
        asyncio.run(batched())  # allocator, kernels
    else:
        asyncio.run(agent.respond([requests(1, 4)[0]]))
    log(f"{reqs[0].max_tokens} new tokens, {len(reqs)} requests: batched vs sequential")
    walls = compare(
        {
            "batched": lambda: timed("batched", batched),
            "sequential": lambda: timed("seq", sequential),
        },
        max(3, runs),
        baseline="batched",
    )
    walls.pop("values")
    b_out, s_out = outputs["batched"], outputs["seq"]
    tokens = sum(r.tokens for r in b_out)
    return {
        "new_tokens": reqs[0].max_tokens,
        "prompt_tokens_mean": round(statistics.mean(prompt_tokens)),
        "tokens": tokens,
        "wall_s": walls,
        "batched_tok_s": round(tokens / walls["batched"]["median"], 2),
        "sequential_tok_s": round(tokens / walls["sequential"]["median"], 2),
        # The figure: sequential wall over the batched wall beside it (median, range).
        "speedup": walls["sequential"]["vs_baseline"],
        "same_output": [r.texts for r in b_out] == [r.texts for r in s_out],
    }


if __name__ == "__main__":
    raise SystemExit(main())
