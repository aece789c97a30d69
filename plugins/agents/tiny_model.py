"""Tiny local models built from nothing but the bundled passages, for offline tests and demos.

No machine here reaches a model hub, yet the transformers code paths (loading, chat templates,
batched generation, LoRA adapters, sequence-classification scores, PairRM) must run for real.
These builders write checkpoints in the published layouts (`save_pretrained`), so the loaders
under test cannot tell them from a downloaded model:

    python -c "from arena_plugins.agents.tiny_model import build_tiny_llama; \
build_tiny_llama('models/tiny')"

`build_tiny_llama` trains a byte-level BPE tokenizer on the passages of
`arena_plugins/datasets/data/bundled.jsonl` and saves a 2-layer Llama with random weights.
`build_tiny_classifier` saves a DeBERTa-v2 sequence classifier (the shape of a reward or cost
model) with a WordPiece tokenizer trained the same way. torch, transformers and tokenizers are
imported inside the functions.
"""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

# Chat markers are single added tokens, so a template renders the same ids however BPE merges.
CHAT_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
LLAMA_SPECIALS = ["<pad>", "<unk>", "<s>", "</s>", *CHAT_TOKENS]
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
DEBERTA_SPECIALS = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]


def corpus() -> list[str]:
    """The bundled passages, questions and answers: a few thousand words of plain English."""
    text = (
        resources.files("arena_plugins.datasets")
        .joinpath("data/bundled.jsonl")
        .read_text(encoding="utf-8")
    )
    out: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        out.extend(p for p in row.get("passage", "").split("\n\n") if p.strip())
        out.append(row.get("question", ""))
        out.extend(row.get("answers", []))
    return [t for t in out if t]


def _bpe_tokenizer(vocab_size: int, specials: list[str]) -> Any:
    """Byte-level BPE over the bytes the corpus uses only (printable text and newlines): with
    all 256 byte tokens a random model would emit control characters, escape codes included,
    into transcripts and terminals. Other characters in a prompt are dropped when encoding."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    return tok


def build_tiny_llama(
    out_dir: str | Path,
    *,
    vocab_size: int = 512,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 4,
    kv_heads: int = 2,
    chat_template: bool = True,
    init_std: float = 0.3,
    seed: int = 0,
) -> Path:
    """Write a tiny LlamaForCausalLM and its tokenizer to `out_dir`; return the path.

    The weights are random. `init_std` is far above Llama's 0.02 on purpose: at 0.02 a 64-wide
    model's logits are nearly flat and greedy decoding collapses into repeated newlines (empty
    speeches); at 0.3 it emits varied (meaningless) word pieces, which is what the plumbing
    needs. The same seed gives the same checkpoint.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from tokenizers import processors

    bpe = _bpe_tokenizer(vocab_size, LLAMA_SPECIALS)
    # Like Llama's tokenizers: BOS first when special tokens are added (plain prompts); a chat
    # template writes its own BOS and is encoded without special tokens.
    bos = bpe.token_to_id("<s>")
    bpe.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<s>",
        eos_token="<|end|>" if chat_template else "</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=CHAT_TOKENS,
    )
    tok.padding_side = "left"
    if chat_template:
        tok.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=8192,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
        initializer_range=init_std,
    )
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _wordpiece_vocab(vocab_size: int, normalizer: Any, pre_tokenizer: Any) -> dict[str, int]:
    """DeBERTa's specials, every character of the corpus (alone and as a "##" continuation),
    then its most frequent words (ties in word order), up to `vocab_size`.

    Written by hand: tokenizers' WordPieceTrainer breaks ties between equally frequent merges
    in hash order, so every build gave another vocabulary, hence another tiny model, and a
    test that held out 12 pairs passed or failed by the draw."""
    counts: Counter[str] = Counter()
    for text in corpus():
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)):
            counts[word] += 1
    chars = sorted({c for word in counts for c in word})
    vocab = list(dict.fromkeys([*DEBERTA_SPECIALS, *chars, *(f"##{c}" for c in chars)]))
    known = set(vocab)
    for word, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(vocab) >= vocab_size:
            break
        if word not in known:
            vocab.append(word)
            known.add(word)
    return {t: i for i, t in enumerate(vocab)}


def _deberta_tokenizer(vocab_size: int, extra: list[str] | None = None) -> Any:
    """A WordPiece tokenizer with DeBERTa's specials and [CLS] a [SEP] (b [SEP]) framing."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok = Tokenizer(
        models.WordPiece(_wordpiece_vocab(vocab_size, normalizer, pre_tokenizer), unk_token="[UNK]")
    )
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.WordPiece()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        unk_token="[UNK]",
        mask_token="[MASK]",
        bos_token="[CLS]",
        eos_token="[SEP]",
    )
    if extra:
        fast.add_special_tokens({"additional_special_tokens": extra})
    return fast


def _deberta_config(vocab: int, hidden: int, layers: int, **kw: Any) -> Any:
    from transformers import DebertaV2Config

    return DebertaV2Config(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=512,
        relative_attention=True,
        position_buckets=64,
        max_relative_positions=-1,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        norm_rel_ebd="layer_norm",
        pad_token_id=0,
        # Far above DeBERTa's 0.02, for the reason given in build_tiny_llama: at 0.02 a
        # 32-wide random encoder maps every input to nearly the same vector.
        initializer_range=0.3,
        **kw,
    )


def build_tiny_classifier(
    out_dir: str | Path,
    num_labels: int = 1,
    *,
    vocab_size: int = 3000,  # every word of the corpus fits: short, whole-word sequences
    hidden: int = 32,
    layers: int = 2,
    seed: int = 0,
) -> Path:
    """Write a tiny DebertaV2ForSequenceClassification (a reward or cost model) and tokenizer."""
    import torch
    from transformers import DebertaV2ForSequenceClassification

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = _deberta_tokenizer(vocab_size)
    torch.manual_seed(seed)
    config = _deberta_config(len(tok), hidden, layers, num_labels=num_labels)
    model = DebertaV2ForSequenceClassification(config).eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def build_tiny_pairrm(
    out_dir: str | Path,
    *,
    layout: str = "pairrm",
    hidden: int = 32,
    layers: int = 2,
    vocab_size: int = 3000,  # every word of the corpus fits: short, whole-word sequences
    source_maxlength: int = 64,
    candidate_maxlength: int = 32,
    seed: int = 0,
) -> Path:
    """Write a randomly initialised ranker in PairRM's published layout; return its directory.

    `layout="pairrm"` (llm-blender/PairRM): `config.json` is llm-blender's RankerConfig whose
    `model_name` is the encoder directory written to `out_dir/backbone` (standing in for
    microsoft/deberta-v3-large: a DeBERTa-v2 config, weights and tokenizer); the ranker
    directory holds the tokenizer with the four prefix tokens added and `pytorch_model.bin`
    with the keys `pretrained_model.*` and `head_layer.{1,4}.*`, written from plain torch
    modules named as llm-blender's `CrossCompareReranker` names them.
    `layout="hf"` (llm-blender/PairRM-hf): one self-contained directory, a DebertaV2Config with
    the prefix token ids, `model.safetensors` and the tokenizer.
    """
    import torch
    from transformers import AutoTokenizer, DebertaV2Model

    if layout not in ("pairrm", "hf"):
        raise ValueError(f"unknown layout {layout!r}; expected 'pairrm' or 'hf'")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    base_tok = _deberta_tokenizer(vocab_size)
    config = _deberta_config(len(base_tok), hidden, layers)
    backbone = out / "backbone"
    base_tok.save_pretrained(backbone)
    # The ranker's tokenizer is the encoder's plus the prefix tokens (ids must agree: a second
    # training run of WordPiece may number the same vocabulary differently).
    tok = AutoTokenizer.from_pretrained(backbone)
    prefixes = ["<|source|>", "<|candidate1|>", "<|candidate2|>", "<|candidate|>"]
    tok.add_tokens(prefixes)  # as llm-blender's collator does: normal added tokens, this order
    encoder = DebertaV2Model(config)
    encoder.resize_token_embeddings(len(tok), mean_resizing=False)
    ranker = torch.nn.Module()
    ranker.pretrained_model = encoder
    ranker.head_layer = torch.nn.Sequential(
        torch.nn.Dropout(0.05),
        torch.nn.Linear(2 * hidden, hidden),
        torch.nn.Tanh(),
        torch.nn.Dropout(0.05),
        torch.nn.Linear(hidden, 1),
    )
    state = {k: v.contiguous() for k, v in ranker.state_dict().items()}
    tok.save_pretrained(out)
    if layout == "hf":
        import shutil

        from safetensors.torch import save_file

        shutil.rmtree(backbone)
        hf = encoder.config
        ids = {p: tok.convert_tokens_to_ids(p) for p in prefixes}
        hf.architectures = ["DebertaV2PairRM"]
        hf.n_tasks, hf.drop_out, hf.sep_token_id = 1, 0.05, tok.sep_token_id
        hf.source_prefix_id, hf.cand1_prefix_id = ids["<|source|>"], ids["<|candidate1|>"]
        hf.cand2_prefix_id, hf.cand_prefix_id = ids["<|candidate2|>"], ids["<|candidate|>"]
        hf.save_pretrained(out)
        save_file(state, str(out / "model.safetensors"))
        return out
    DebertaV2Model(config).save_pretrained(backbone)
    ranker_config = {
        "ranker_type": "pairranker",
        "model_type": "deberta",
        "model_name": str(backbone),
        "cache_dir": None,
        "load_checkpoint": None,
        "source_maxlength": source_maxlength,
        "candidate_maxlength": candidate_maxlength,
        "n_tasks": 1,
        "num_pos": 5,
        "num_neg": 5,
        "sub_sampling_mode": "all_pair",
        "sub_sampling_ratio": 0.4,
        "loss_type": "instructgpt",
        "reduce_type": "linear",
        "inference_mode": "bubble",
        "drop_out": 0.05,
        "fp16": True,
        "device": None,
    }
    (out / "config.json").write_text(json.dumps(ranker_config, indent=2), encoding="utf-8")
    torch.save(state, out / "pytorch_model.bin")
    return out
