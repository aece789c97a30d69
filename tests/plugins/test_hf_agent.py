"""The transformers agent and the gather-window batcher, on a tiny Llama built in the session.

The real loading code (AutoTokenizer, AutoModelForCausalLM, peft), chat templates and batched
`generate` run here; only the checkpoint is small.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from arena_core.plugins import get_registry
from arena_core.testing import check_agent
from arena_core.types import Message, Observation, Request

pytest.importorskip("transformers")

from arena_plugins.agents import hf_agent
from arena_plugins.agents.batching import Batcher
from arena_plugins.agents.hf_agent import GenJob, HFAgent, HFOptions, ScoreJob


def req(text: str, **kw: object) -> Request:
    return Request(
        messages=[
            Message(role="system", content="You are a debater."),
            Message(role="user", content=text),
        ],
        observation=Observation(seat="A", phase="speech"),
        **kw,
    )


def agent(path: Path, **kw: object) -> HFAgent:
    return HFAgent(HFOptions(model=str(path), max_new_tokens=12, **kw))


# --- the batcher ----------------------------------------------------------------------------------


def test_batcher_gathers_concurrent_requests_up_to_max_batch() -> None:
    seen: list[list[int]] = []

    def double(items: list[int]) -> list[int]:
        seen.append(list(items))
        return [2 * i for i in items]

    b: Batcher[int, int] = Batcher(double, max_batch=4, gather_ms=50)

    async def main() -> list[int]:
        return await b.submit_many(list(range(10)))

    assert asyncio.run(main()) == [2 * i for i in range(10)]
    assert [len(s) for s in seen] == [4, 4, 2]  # full batches go at once, the rest after 50 ms
    assert sorted(x for s in seen for x in s) == list(range(10))


def test_batcher_isolates_a_bad_request_and_survives_a_new_event_loop() -> None:
    def fn(items: list[int]) -> list[int]:
        if -1 in items:
            raise ValueError("bad item")
        return items

    b: Batcher[int, int] = Batcher(fn, max_batch=8, gather_ms=20)

    async def main() -> list[object]:
        return await asyncio.gather(*(b.submit(i) for i in (1, -1, 3)), return_exceptions=True)

    out = asyncio.run(main())
    assert out[0] == 1 and out[2] == 3
    assert isinstance(out[1], ValueError)
    assert b.sizes == [3, 1, 1, 1]  # the failed batch was retried item by item
    assert asyncio.run(main())[0] == 1  # a second asyncio.run gets its own worker


def test_batcher_skips_requests_whose_caller_gave_up() -> None:
    calls: list[list[int]] = []

    async def fn(items: list[int]) -> list[int]:
        calls.append(items)
        return items

    b: Batcher[int, int] = Batcher(fn, max_batch=8, gather_ms=30)

    async def main() -> int:
        doomed = asyncio.create_task(b.submit(1))
        await asyncio.sleep(0)
        doomed.cancel()
        return await b.submit(2)

    assert asyncio.run(main()) == 2
    assert calls == [[2]]


# --- the tiny model and the agent -----------------------------------------------------------------


def test_tiny_llama_is_a_real_checkpoint(tiny_llama_dir: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    assert (tiny_llama_dir / "model.safetensors").exists()
    config = AutoConfig.from_pretrained(tiny_llama_dir)
    assert (config.model_type, config.num_hidden_layers, config.hidden_size) == ("llama", 2, 64)
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    text = tok.apply_chat_template(
        [{"role": "user", "content": "Hello"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<s><|user|>\nHello<|end|>\n<|assistant|>\n"
    ids = tok("The ledger was sealed.")["input_ids"]
    assert ids[0] == tok.bos_token_id
    assert tok.decode(ids, skip_special_tokens=True) == "The ledger was sealed."
    templated = tok(text, add_special_tokens=False)["input_ids"]
    assert templated[0] == tok.bos_token_id and templated.count(tok.bos_token_id) == 1


def test_transformers_agent_conforms(tiny_llama_dir: Path) -> None:
    check_agent(lambda: agent(tiny_llama_dir))
    check_agent(lambda: agent(tiny_llama_dir, temperature=0.9), protocol="consultancy")


def test_registry_builds_it_and_shares_the_weights(tiny_llama_dir: Path) -> None:
    registry = get_registry()
    a = registry.build("agent", "transformers", {"model": str(tiny_llama_dir)})
    b = registry.build("agent", "transformers", {"model": str(tiny_llama_dir), "temperature": 1})
    assert isinstance(a, HFAgent) and a.model is b.model  # one copy of the weights
    assert a.model.device == "cpu"
    asyncio.run(a.aclose())
    assert b.model.key in hf_agent._LOADED
    asyncio.run(b.aclose())
    assert all(k.model != str(tiny_llama_dir) for k in hf_agent._LOADED)


def test_concurrent_matches_share_one_generate_call(tiny_llama_dir: Path) -> None:
    a = agent(tiny_llama_dir, gather_ms=50)
    requests = [req(f"Speech {i}: the harbour froze over.", seed=i) for i in range(6)]

    async def concurrently() -> list[str]:
        outs = await asyncio.gather(*(a.respond([r]) for r in requests))
        return [o[0].text for o in outs]

    async def one_by_one() -> list[str]:
        return [(await a.respond([r]))[0].text for r in requests]

    batched = asyncio.run(concurrently())
    sizes = a.model.batcher("generate", 16, 50).sizes
    assert sizes == [6]
    assert asyncio.run(one_by_one()) == batched  # left padding does not change the output
    assert len(set(batched)) > 1  # the prompts differ, and so do the speeches
    asyncio.run(a.aclose())


def test_sampling_is_seeded_per_request_and_differs_per_sample(tiny_llama_dir: Path) -> None:
    a = agent(tiny_llama_dir, max_batch=4)

    async def main() -> tuple[list[str], list[str], list[str]]:
        x = await a.respond([req("Go.", temperature=1.0, n=3, seed=11)])
        y = await a.respond([req("Other.", seed=1), req("Go.", temperature=1.0, n=3, seed=11)])
        z = await a.respond([req("Go.", temperature=1.0, n=3, seed=12)])
        return x[0].texts, y[1].texts, z[0].texts

    first, again, other = asyncio.run(main())
    assert first == again  # the same seed in another batch, another position
    assert len(set(first)) == 3  # three samples, three texts
    assert first != other
    asyncio.run(a.aclose())


def test_logprobs_match_teacher_forcing(tiny_llama_dir: Path) -> None:
    a = agent(tiny_llama_dir, top_logprobs=3)

    async def main() -> tuple[list[float], list[int], list[list[float]]]:
        resp = (await a.respond([req("Why did the lamp go dark?", logprobs=True)]))[0]
        jobs = a.jobs_for(req("Why did the lamp go dark?", logprobs=True))
        gen = a.model.generate(jobs)[0]
        scored = a.model.score([ScoreJob(jobs[0].prompt_ids, [gen.token_ids])])[0]
        assert resp.meta["top_logprobs"][0] and len(resp.meta["tokens"]) == resp.tokens
        return resp.logprobs or [], gen.token_ids, [scored]

    lps, ids, scored = asyncio.run(main())
    assert len(lps) == len(ids) == 12 and all(lp <= 0 for lp in lps)
    assert sum(lps) == pytest.approx(scored[0][0], abs=1e-3)
    asyncio.run(a.aclose())


def test_score_continuations_single_and_multi_token(tiny_llama_dir: Path) -> None:
    a = agent(tiny_llama_dir)
    msgs = [Message(role="user", content="Which answer is right?")]

    async def main() -> tuple[list[float], list[float]]:
        labels = await a.score_continuations(msgs, "Answer:", [" A", " B"])
        long = await a.score_continuations(msgs, "Answer:", [" A", " the harbour froze"])
        return labels, long

    labels, long = asyncio.run(main())
    assert long[0] == pytest.approx(labels[0], abs=1e-4)  # same token, one row or many
    assert long[1] < labels[0] - 2  # three tokens are less likely than one
    assert labels[0] != labels[1]
    asyncio.run(a.aclose())


def test_stop_strings_token_budget_and_eos_suppression(tiny_llama_dir: Path) -> None:
    a = agent(tiny_llama_dir)
    free = asyncio.run(a.respond([req("Tell me.")]))[0]
    stop = free.text.strip()[1:3]
    stopped = asyncio.run(a.respond([req("Tell me.", stop=[stop]), req("Tell me.", max_tokens=3)]))
    assert stop not in stopped[0].text and free.text.startswith(stopped[0].text)
    assert stopped[0].meta["finish_reason"] == "stop" and stopped[0].tokens < free.tokens
    assert stopped[1].tokens == 3 and stopped[1].meta["finish_reason"] == "length"
    asyncio.run(a.aclose())

    # min_new: a row whose best token is end-of-sequence picks the next best instead
    import torch

    eos = 7
    scores = torch.zeros(2, 10)
    scores[:, eos] = 5.0
    scores[:, 3] = 1.0
    jobs = [GenJob([1], max_new=4, min_new=2), GenJob([1], max_new=4, min_new=0)]
    dec = hf_agent._RowDecoder(jobs, prompt_len=1, eos_ids=[eos])
    out = dec(torch.zeros(2, 1, dtype=torch.long), scores)
    assert out.argmax(-1).tolist() == [3, eos]


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated")
def test_lora_adapter_enters_as_a_player(tiny_llama_dir: Path, tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    torch.manual_seed(3)
    lora = get_peft_model(
        base,
        LoraConfig(
            r=4, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False
        ),
    )
    lora.save_pretrained(tmp_path / "adapter")

    plain = agent(tiny_llama_dir)
    tuned = agent(tiny_llama_dir, adapter=str(tmp_path / "adapter"))
    merged = agent(tiny_llama_dir, adapter=str(tmp_path / "adapter"), merge_adapter=True)
    assert tuned.model is not plain.model
    requests = [req("Speak.", logprobs=True), req("Again.")]
    p, t, m = (asyncio.run(x.respond(requests)) for x in (plain, tuned, merged))
    assert [r.text for r in t] != [r.text for r in p]
    assert [r.text for r in m] == [r.text for r in t]
    for x in (plain, tuned, merged):
        asyncio.run(x.aclose())


def test_device_and_dtype_are_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    assert hf_agent.pick_device("auto") in ("cpu", "cuda", "mps")
    assert hf_agent.pick_device("cuda:1") == "cuda:1"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert hf_agent.pick_device("auto") == "cuda"
    assert hf_agent.pick_dtype("auto", "cuda") is torch.float16
    assert hf_agent.pick_dtype("auto", "cpu") is torch.float32
    assert hf_agent.pick_dtype("bfloat16", "cpu") is torch.bfloat16


def test_a_missing_model_is_an_error_before_any_match(tmp_path: Path) -> None:
    with pytest.raises((OSError, ValueError)):
        get_registry().build("agent", "transformers", {"model": str(tmp_path / "nope")})


def test_model_backed_plugin_modules_import_no_heavy_library() -> None:
    modules = [
        f"arena_plugins.{m}"
        for m in (
            "agents.batching",
            "agents.hf_agent",
            "agents.vllm_agent",
            "agents.openai_agent",
            "agents.anthropic_agent",
            "agents.human",
            "agents.tiny_model",
            "agents.plugin",
            "judges.llm_judge",
            "judges.pairrm",
            "judges.reward_model",
            "judges.gold",
            "judges.human_judge",
            "judges.plugin",
        )
    ]
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "heavy = [m for m in ('torch', 'transformers', 'openai', 'anthropic', 'vllm', 'peft',"
        " 'tokenizers', 'safetensors', 'rich')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_model_without_chat_template_gets_a_plain_prompt(tmp_path: Path) -> None:
    from arena_plugins.agents.tiny_model import build_tiny_llama

    path = build_tiny_llama(tmp_path / "plain", chat_template=False, vocab_size=300)
    a = agent(path)
    text = a.model.render(req("Hello.").messages)
    assert text == "System: You are a debater.\n\nUser: Hello.\n\nAssistant:"
    ids = a.prompt_ids(req("Hello.").messages)
    assert ids[0] == a.model.tokenizer.bos_token_id  # no template: the tokenizer adds BOS
    resp = asyncio.run(a.respond([req("Hello.")]))[0]
    assert 1 <= resp.tokens <= 12  # this one may end early on </s>, never before min_new_tokens
    assert resp.meta["finish_reason"] == ("length" if resp.tokens == 12 else "stop")
    asyncio.run(a.aclose())
