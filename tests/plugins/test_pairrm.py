"""PairRM judge on a tiny randomly initialised ranker saved in PairRM's published layouts.

The expected logits are computed here independently of the judge's module: from the raw state
dict, with the input assembled by hand the way llm-blender's collator and `cat_ids` assemble
it. (Checked once by hand against llm-blender 0.0.2's own `CrossCompareReranker._full_predict`,
shimmed for transformers 5: identical input ids, logits within 2e-7.)
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
from pathlib import Path

import pytest

from arena_core.plugins import get_registry
from arena_core.testing import check_judge
from arena_core.types import AnswerOption, JudgeView

pytest.importorskip("transformers")

QUESTION = "Why did the ferry stop running in winter?"
CANDIDATES = ["The harbour froze over.", "The captain retired [SEP] early.", "A storm came."]


@pytest.fixture(scope="module")
def pairrm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from arena_plugins.agents.tiny_model import build_tiny_pairrm

    return build_tiny_pairrm(tmp_path_factory.mktemp("pairrm"))


def view(n: int = 3, i: int = 0) -> JudgeView:
    return JudgeView(
        protocol="best-of-n",
        question=QUESTION,
        options=[
            AnswerOption(label=chr(65 + k), text=f"{CANDIDATES[k]} {i}", index=k) for k in range(n)
        ],
        transcript=[],
        item_id=f"i{i}",
    )


def judge(path: Path, **kw: object) -> object:
    return get_registry().build("judge", "pairrm", {"model": str(path), **kw})


def reference_logit(path: Path, source: str, left: str, right: str) -> float:
    """C(left, right) from the raw checkpoint and hand-built input ids."""
    import torch
    from transformers import AutoTokenizer, DebertaV2Config, DebertaV2Model

    tok = AutoTokenizer.from_pretrained(path)
    ranker_config = json.loads((path / "config.json").read_text())
    state = torch.load(path / "pytorch_model.bin", weights_only=True)
    config = DebertaV2Config.from_pretrained(ranker_config["model_name"])
    config.vocab_size = state["pretrained_model.embeddings.word_embeddings.weight"].shape[0]
    encoder = DebertaV2Model(config).eval()
    encoder.load_state_dict(
        {
            k[len("pretrained_model.") :]: v
            for k, v in state.items()
            if k.startswith("pretrained_model.")
        },
        strict=False,
    )
    ids = tok.convert_tokens_to_ids

    def enc(text: str) -> list[int]:
        return tok(text.replace("[SEP]", " "))["input_ids"]  # [CLS] ... [SEP]

    src = enc("<|source|>" + source)
    one = [
        ids("<|candidate1|>") if t == ids("<|candidate|>") else t
        for t in enc("<|candidate|>" + left)
    ]
    two = [
        ids("<|candidate2|>") if t == ids("<|candidate|>") else t
        for t in enc("<|candidate|>" + right)
    ]
    row = torch.tensor([src + one + two])
    with torch.no_grad():
        h = encoder(input_ids=row).last_hidden_state[0]
        tokens = row[0].tolist()
        s, c1, c2 = (
            h[tokens.index(ids(t))] for t in ("<|source|>", "<|candidate1|>", "<|candidate2|>")
        )

        def head(x: torch.Tensor) -> float:
            x = torch.tanh(x @ state["head_layer.1.weight"].T + state["head_layer.1.bias"])
            return float(x @ state["head_layer.4.weight"].T + state["head_layer.4.bias"])

        return head(torch.cat([s, c1])) - head(torch.cat([s, c2]))


def test_pair_input_is_laid_out_as_llm_blender_does(pairrm_dir: Path) -> None:
    j = judge(pairrm_dir)
    m = j.model
    src, cands = m.encode("Q? [SEP] more", ["a", "b"], 64, 32)
    tokens = m.tokenizer.convert_ids_to_tokens(m.pair_ids(src, cands[0], cands[1]))
    assert tokens == [
        "[CLS]", "<|source|>", "q", "?", "more", "[SEP]",
        "[CLS]", "<|candidate1|>", "a", "[SEP]",
        "[CLS]", "<|candidate2|>", "b", "[SEP]",
    ]  # fmt: skip
    # truncation: the source to source_maxlength, candidates to candidate_max + spare // 2
    src, cands = m.encode("word " * 200, ["word " * 200], 64, 32)
    assert len(src) == 64 and len(cands[0]) == 32
    src, cands = m.encode("word", ["word " * 200], 64, 32)
    assert len(cands[0]) == 32 + (64 - len(src)) // 2
    asyncio.run(j.aclose())


def test_comparisons_match_the_checkpoint_computed_by_hand(pairrm_dir: Path) -> None:
    j = judge(pairrm_dir)
    c = asyncio.run(j.comparisons(QUESTION, CANDIDATES))
    for a, b in [(0, 1), (1, 0), (2, 1)]:
        expected = reference_logit(pairrm_dir, QUESTION, CANDIDATES[a], CANDIDATES[b])
        assert c[a][b] == pytest.approx(expected, abs=1e-5)
    assert abs(c[0][1] + c[1][0]) > 1e-4  # the orders really differ: both are needed
    asyncio.run(j.aclose())


def test_scores_and_probabilities(pairrm_dir: Path) -> None:
    j = judge(pairrm_dir)
    d = asyncio.run(j.decide(view(2)))
    c = d.meta["comparisons"]
    assert d.meta["scores"] == pytest.approx([(c[0][1] - c[1][0]) / 2, (c[1][0] - c[0][1]) / 2])
    assert d.probs[0] == pytest.approx(1 / (1 + math.exp(-(c[0][1] - c[1][0]) / 2)))
    one_way = asyncio.run(judge(pairrm_dir, both_orders=False).decide(view(2)))
    oc = one_way.meta["comparisons"]
    assert oc[0][1] == pytest.approx(c[0][1], abs=1e-6) and oc[1][0] == -oc[0][1]
    d3 = asyncio.run(j.decide(view(3)))
    s, c3 = d3.meta["scores"], d3.meta["comparisons"]
    assert s[2] == pytest.approx(sum(c3[2][k] - c3[k][2] for k in range(3)) / 3)
    e = [math.exp(x / 2) for x in s]
    assert d3.probs == pytest.approx([x / sum(e) for x in e])
    asyncio.run(j.aclose())


def test_comparisons_of_concurrent_matches_are_batched(pairrm_dir: Path) -> None:
    j = judge(pairrm_dir, gather_ms=50, max_batch=64)

    async def main() -> list:
        return await asyncio.gather(*(j.decide(view(3, i)) for i in range(4)))

    together = asyncio.run(main())
    assert j.model.batcher(64, 50).sizes == [24]  # 4 matches x 6 ordered pairs
    alone = [asyncio.run(j.decide(view(3, i))) for i in range(4)]
    for a, b in zip(together, alone, strict=True):
        assert a.probs == pytest.approx(b.probs, abs=1e-6)
    asyncio.run(j.aclose())


def test_pairrm_hf_layout_gives_the_same_verdicts(pairrm_dir: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, DebertaV2Config

    hf = tmp_path / "pairrm-hf"
    hf.mkdir()
    tok = AutoTokenizer.from_pretrained(pairrm_dir)
    tok.save_pretrained(hf)
    state = torch.load(pairrm_dir / "pytorch_model.bin", weights_only=True)
    config = DebertaV2Config.from_pretrained(pairrm_dir / "backbone")
    config.vocab_size = len(tok)
    config.n_tasks = 1
    config.source_prefix_id = tok.convert_tokens_to_ids("<|source|>")
    config.cand1_prefix_id = tok.convert_tokens_to_ids("<|candidate1|>")
    config.cand2_prefix_id = tok.convert_tokens_to_ids("<|candidate2|>")
    config.cand_prefix_id = tok.convert_tokens_to_ids("<|candidate|>")
    config.save_pretrained(hf)
    save_file({k: v.contiguous() for k, v in state.items()}, str(hf / "model.safetensors"))
    limits = {"source_max_length": 64, "candidate_max_length": 32}
    a = asyncio.run(judge(pairrm_dir).decide(view()))
    b = asyncio.run(judge(hf, **limits).decide(view()))
    assert b.probs == pytest.approx(a.probs, abs=1e-6)


def test_tiny_builder_hf_layout_and_conformance(pairrm_dir: Path, tmp_path: Path) -> None:
    from arena_plugins.agents.tiny_model import build_tiny_pairrm

    check_judge(judge(pairrm_dir))
    check_judge(judge(build_tiny_pairrm(tmp_path / "hf", layout="hf")))


def test_a_checkpoint_without_its_encoder_is_a_clear_error(
    pairrm_dir: Path, tmp_path: Path
) -> None:
    moved = tmp_path / "pairrm"
    shutil.copytree(pairrm_dir, moved, ignore=shutil.ignore_patterns("backbone"))
    config = json.loads((moved / "config.json").read_text())
    config["model_name"] = "microsoft/deberta-v3-large"
    (moved / "config.json").write_text(json.dumps(config))
    with pytest.raises(FileNotFoundError, match="pass `backbone`"):
        judge(moved)
    ok = asyncio.run(judge(moved, backbone=str(pairrm_dir / "backbone")).decide(view()))
    assert len(ok.probs) == 3
