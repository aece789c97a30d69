"""Preference data: Anthropic HH-RLHF (and APO's split of it), UltraFeedback, PKU-SafeRLHF, any
pairwise file with a field map (D2PO's question/response_j/response_k), and prompt-only sets.

Each pairwise source gives `pairs(split)` (typed `Pair`s for learners) and `items(split)` (the
same data as Items for protocols and judges: prompt -> question, responses -> answers, gold ->
the preferred one).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from arena_plugins.datasets.records import (
    FileOptions,
    Pair,
    PairSource,
    Raw,
    RecordError,
    RecordSource,
    number,
    read_records,
    response_text,
    scalars,
)
from pydantic import Field

from arena_core.types import Item

HUMAN, ASSISTANT = "\n\nHuman:", "\n\nAssistant:"
_SPEAKER = re.compile(r"\n\n(Human|Assistant):")


class PairOptions(FileOptions):
    order: Literal["shuffled", "chosen-first"] = Field(
        "shuffled",
        description="answer order as Items: fixed by a hash of the id, or the preferred first",
    )


# --- HH-RLHF --------------------------------------------------------------------------------


def dialogue(text: str) -> list[dict[str, str]]:
    """'\\n\\nHuman: hi\\n\\nAssistant: hello' -> chat messages (user / assistant)."""
    out = turns(text)
    if out and out[-1]["role"] == "assistant" and not out[-1]["content"]:
        out.pop()  # the trailing 'Assistant:' cue of a prompt
    return out


def turns(text: str) -> list[dict[str, str]]:
    """Every turn of an HH dialogue as a chat message, an empty last reply included."""
    parts = _SPEAKER.split(text)
    return [
        {"role": "user" if who == "Human" else "assistant", "content": content.strip()}
        for who, content in zip(parts[1::2], parts[2::2], strict=True)
    ]


def question_of_dialogue(prompt: str) -> str:
    """The dialogue an HH prompt holds, without the trailing 'Assistant:' cue."""
    text = prompt[: -len(ASSISTANT)] if prompt.endswith(ASSISTANT) else prompt
    return text.strip()


def common_prompt(chosen: str, rejected: str) -> str | None:
    """The longest common start of two HH dialogues, cut after its last '\\n\\nAssistant:'
    cue (a turn boundary), as TRL's HH recipe cuts it; None when they share no Assistant turn.

    Both completions then begin with an Assistant reply; when the dialogues part before the
    last turn, the completions hold the rest of the dialogue (replies and Human turns).
    """
    n = 0
    for a, b in zip(chosen, rejected, strict=False):
        if a != b:
            break
        n += 1
    cut = chosen.rfind(ASSISTANT, 0, n)  # the last cue wholly inside the common start
    return None if cut < 0 else chosen[: cut + len(ASSISTANT)]


def split_hh(raw: Raw, chosen_field: str = "chosen", rejected_field: str = "rejected") -> HhSplit:
    """An HH record's two dialogues as (prompt, chosen, rejected) and their chat messages.

    The prompt is the longest common dialogue prefix cut at a turn boundary (it ends with the
    '\\n\\nAssistant:' cue); the completions are what follows. An empty final reply is a reply
    (kept as ''), and a completion that runs over several turns keeps them: as text, and as
    messages (assistant, user, assistant ...) in `chosen_messages` / `rejected_messages`.
    """
    chosen, rejected = raw.text(chosen_field), raw.text(rejected_field)
    if ASSISTANT not in chosen:
        raise raw.error(chosen_field, "no '\\n\\nAssistant:' turn in the dialogue")
    prompt = common_prompt(chosen, rejected)
    if prompt is None:
        raise raw.error(
            rejected_field,
            f"shares no dialogue with '{chosen_field}' up to an '\\n\\nAssistant:' turn",
        )
    good, bad = chosen[len(prompt) :], rejected[len(prompt) :]
    return HhSplit(
        prompt=prompt,
        chosen=good.strip(),
        rejected=bad.strip(),
        messages=dialogue(prompt),
        chosen_messages=turns(ASSISTANT + good),
        rejected_messages=turns(ASSISTANT + bad),
    )


@dataclass(frozen=True)
class HhSplit:
    prompt: str
    chosen: str
    rejected: str
    messages: list[dict[str, str]]  # the prompt's dialogue
    chosen_messages: list[dict[str, str]]  # the completion's turns, an assistant reply first
    rejected_messages: list[dict[str, str]]

    def metadata(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "chosen_messages": self.chosen_messages,
            "rejected_messages": self.rejected_messages,
        }


def hh_messages(prompt: str, chosen: str, rejected: str) -> dict[str, Any]:
    """The chat messages of a pair whose prompt is HH-shaped (APO's queries): the prompt's
    dialogue and each completion's turns."""
    return {
        "messages": dialogue(prompt),
        "chosen_messages": turns(ASSISTANT + chosen),
        "rejected_messages": turns(ASSISTANT + rejected),
    }


def _reply(raw: Raw, field: str) -> str:
    """A reply: a string, possibly empty (an empty reply is a reply)."""
    value = raw.need(field)
    if not isinstance(value, str):
        raise raw.error(field, f"must be a string, got {type(value).__name__}")
    return value.strip()


def looks_like_hh(value: Any) -> bool:
    """A whole HH dialogue ('\\n\\nHuman: ...\\n\\nAssistant: ...') rather than a reply."""
    return isinstance(value, str) and value.lstrip(" ").startswith(HUMAN) and ASSISTANT in value


class HhOptions(PairOptions):
    layout: Literal["auto", "anthropic", "apo-pairs", "apo-samples"] = Field(
        "auto",
        description="anthropic: chosen/rejected dialogues; apo-pairs: text/scores lists; "
        "apo-samples: query + sample_N; auto: per record",
    )
    golden: str | None = Field(
        None, description="APO golden answers file ({query_id, golden}): pairs golden > samples"
    )
    apo_pairs: Literal["best-worst", "all"] = Field(
        "best-worst", description="pairs from one APO comparison: best vs worst, or every order"
    )


class HhSource(PairSource):
    """Anthropic HH-RLHF JSONL, and APO's HH split (comparison lists, LLM samples, golden)."""

    opts: HhOptions

    def __init__(self, options: HhOptions) -> None:
        super().__init__(options)
        self._golden: dict[str, str] | None = None

    def layout(self, raw: Raw) -> str:
        if self.opts.layout != "auto":
            return self.opts.layout
        d = raw.data
        if "chosen" in d or "rejected" in d:
            return "anthropic"
        if "text" in d and "scores" in d:
            return "apo-pairs"
        if "query" in d and any(str(k).startswith("sample_") for k in d):
            return "apo-samples"
        raise raw.error(
            None,
            "not an HH-RLHF record: expected chosen/rejected, APO's text/scores, or APO's "
            "query/sample_N fields",
        )

    def golden(self, raw: Raw) -> dict[str, str]:
        if self._golden is None:
            if self.opts.golden is None:
                raise raw.error(
                    "query", "APO samples make pairs only with the golden answers (option golden)"
                )
            table: dict[str, str] = {}
            for g in read_records(FileOptions(path=self.opts.golden), None):
                if "__error__" in g.data:
                    raise g.error(None, g.data["__error__"])
                table[str(g.need("query_id"))] = g.text("golden")
            self._golden = table
        return self._golden

    def question_of(self, pair: Pair) -> str:
        return question_of_dialogue(pair.prompt)

    # pairs ...

    def convert(self, raw: Raw) -> Iterator[Pair]:
        layout = self.layout(raw)
        if layout == "anthropic":
            hh = split_hh(raw)
            yield Pair(
                id=raw.ident("id"),
                prompt=hh.prompt,
                chosen=hh.chosen,
                rejected=hh.rejected,
                metadata={**hh.metadata(), "layout": layout},
            )
        elif layout == "apo-pairs":
            base, query, responses, scores = self._comparison(raw)
            ranked = sorted(range(len(scores)), key=lambda i: -scores[i])
            if self.opts.apo_pairs == "best-worst":
                orders = [(ranked[0], ranked[-1])]
            else:
                orders = [(i, j) for i in ranked for j in ranked if scores[i] > scores[j]]
            for i, j in orders:
                yield Pair(
                    id=base if self.opts.apo_pairs == "best-worst" else f"{base}:{i}>{j}",
                    prompt=query,
                    chosen=responses[i],
                    rejected=responses[j],
                    score_chosen=scores[i],
                    score_rejected=scores[j],
                    metadata={
                        **hh_messages(query, responses[i], responses[j]),
                        "layout": layout,
                        "type": raw.get("type"),
                    },
                )
        else:
            base, query, samples = self._samples(raw)
            gold = self.golden(raw).get(base)
            if gold is None:
                raise raw.error("query_id", f"no golden answer for {base!r} in {self.opts.golden}")
            for i, sample in enumerate(samples):
                yield Pair(
                    id=f"{base}:golden>sample_{i}",
                    prompt=query,
                    chosen=gold,
                    rejected=sample,
                    metadata={**hh_messages(query, gold, sample), "layout": layout, "sample": i},
                )

    # items ...

    def items(self, split: str | None = None) -> Iterator[Item]:
        return self._iterate(split, Item, self.convert_items)

    def convert_items(self, raw: Raw) -> Iterator[Item]:
        layout = self.layout(raw)
        if layout == "anthropic":
            for pair in self.convert(raw):
                yield self.to_item(pair)
        elif layout == "apo-pairs":
            base, query, responses, scores = self._comparison(raw)
            yield Item(
                id=base,
                question=question_of_dialogue(query),
                answers=responses,
                gold=max(range(len(scores)), key=lambda i: (scores[i], -i)),
                metadata={"prompt": query, "scores": scores, "layout": layout},
            )
        else:
            base, query, samples = self._samples(raw)
            meta: dict[str, Any] = {"prompt": query, "layout": layout}
            if self.opts.golden is not None:
                meta["golden"] = self.golden(raw).get(base)
            yield Item(
                id=base,
                question=question_of_dialogue(query),
                answers=samples,
                metadata=meta,
            )

    def _comparison(self, raw: Raw) -> tuple[str, str, list[str], list[float]]:
        texts, scores = raw.need("text"), raw.need("scores")
        if not isinstance(texts, list) or len(texts) < 2:
            raise raw.error("text", "must be a list of at least 2 'query<sep>response' strings")
        if not isinstance(scores, list) or len(scores) != len(texts):
            raise raw.error("scores", f"must be a list of {len(texts)} numbers, one per text")
        values = [number(s, raw, f"scores.{i}") for i, s in enumerate(scores)]
        query, responses = None, []
        for i, t in enumerate(texts):
            if not isinstance(t, str) or "<sep>" not in t:
                raise raw.error(f"text.{i}", "must be a 'query<sep>response' string")
            q, response = t.split("<sep>", 1)
            if query is not None and q != query:
                raise raw.error(f"text.{i}", "its query differs from that of text.0")
            query = q  # an empty response is a response (HH has them too): kept as ''
            responses.append(response.strip())
        floats = [v for v in values if v is not None]
        if len(floats) != len(values) or max(floats) == min(floats):
            raise raw.error("scores", "all equal (or null): no preference to learn")
        return raw.ident("query_id"), str(query), responses, floats

    def _samples(self, raw: Raw) -> tuple[str, str, list[str]]:
        query = raw.text("query")
        keys = sorted(
            (k for k in raw.data if str(k).startswith("sample_") and k[7:].isdigit()),
            key=lambda k: int(k[7:]),
        )
        samples = [_reply(raw, k) for k in keys]
        if not samples:
            raise raw.error("sample_0", "missing")
        return raw.ident("query_id"), query, samples


# --- UltraFeedback --------------------------------------------------------------------------


class UltraFeedbackSource(PairSource):
    """UltraFeedback binarized: prompt, chosen/rejected chats, score_chosen/score_rejected."""

    opts: PairOptions

    def convert(self, raw: Raw) -> Iterator[Pair]:
        used = ["prompt", "prompt_id", "chosen", "rejected", "messages"]
        used += ["score_chosen", "score_rejected", self.opts.split_field]
        yield Pair(
            id=raw.ident("prompt_id"),
            prompt=raw.text("prompt"),
            chosen=response_text(raw.need("chosen"), raw, "chosen"),
            rejected=response_text(raw.need("rejected"), raw, "rejected"),
            score_chosen=number(raw.get("score_chosen"), raw, "score_chosen"),
            score_rejected=number(raw.get("score_rejected"), raw, "score_rejected"),
            metadata=scalars(raw.data, used),
        )


# --- PKU-SafeRLHF ---------------------------------------------------------------------------


class PkuOptions(FileOptions):
    prefer: Literal["better", "safer"] = Field(
        "better", description="which response is 'chosen' (and gold): the more helpful, or safer"
    )


PKU_CORE = frozenset(
    """prompt response_0 response_1 better_response_id safer_response_id is_response_0_safe
    is_response_1_safe input dialogue answer other_answer better safer is_safe
    is_other_safe""".split()
)


PAIR_ONLY = frozenset({"chosen_index", "chosen_safe", "rejected_safe", "safer_is"})


def _choice(raw: Raw, field: str) -> int:
    value = raw.need(field)
    if isinstance(value, bool) or value not in (0, 1):
        raise raw.error(field, f"must be 0 or 1, got {value!r}")
    return int(value)


def _flag(raw: Raw, field: str) -> bool:
    value = raw.need(field)
    if not isinstance(value, bool):
        raise raw.error(field, f"must be true or false, got {value!r}")
    return value


class PkuSource(PairSource):
    """PKU-SafeRLHF rows (and safe-rlhf's RawSample): two responses with helpfulness and safety.

    As Items the responses keep their order (response_0, response_1); `gold` is the preferred
    one, `metadata` holds `better` and `safer` (indices) and `is_safe` ([bool, bool]), which
    reward and cost models and red/blue duels need.
    """

    opts: PkuOptions

    def convert(self, raw: Raw) -> Iterator[Pair]:
        d = raw.data
        if "response_0" in d:
            prompt = raw.text("prompt")
            responses = [raw.text("response_0"), raw.text("response_1")]
            better = _choice(raw, "better_response_id")
            safer = _choice(raw, "safer_response_id")
            safe = [_flag(raw, "is_response_0_safe"), _flag(raw, "is_response_1_safe")]
        elif "answer" in d and "other_answer" in d:  # safe-rlhf RawSample
            value = raw.get("input", raw.get("dialogue"))
            if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                value = "\n\n".join(value)
            if not isinstance(value, str) or not value.strip():
                raise raw.error("input", "must be a non-empty string (or 'dialogue' a list)")
            prompt = value
            responses = [raw.text("answer"), raw.text("other_answer")]
            better = 0 if _flag(raw, "better") else 1
            safer = 0 if _flag(raw, "safer") else 1
            safe = [_flag(raw, "is_safe"), _flag(raw, "is_other_safe")]
        else:
            raise raw.error(
                "response_0", "missing (nor safe-rlhf's answer/other_answer): not a PKU record"
            )
        c = better if self.opts.prefer == "better" else safer
        meta: dict[str, Any] = {
            "chosen_index": c,
            "better": better,
            "safer": safer,
            "is_safe": safe,
            "chosen_safe": safe[c],
            "rejected_safe": safe[1 - c],
            "safer_is": "chosen" if safer == c else "rejected",
        }
        for k, v in d.items():  # harm categories, severity levels, sources of newer releases
            keep = k not in PKU_CORE and k != self.opts.split_field and k not in meta
            if keep and isinstance(v, str | int | float | bool | dict) and len(str(v)) <= 500:
                meta[k] = v
        yield Pair(
            id=raw.ident("id"),
            prompt=prompt,
            chosen=responses[c],
            rejected=responses[1 - c],
            metadata=meta,
        )

    def to_item(self, pair: Pair) -> Item:
        c = pair.metadata["chosen_index"]
        answers = [pair.chosen, pair.rejected] if c == 0 else [pair.rejected, pair.chosen]
        return Item(
            id=pair.id,
            question=pair.prompt,
            answers=answers,
            gold=c,
            metadata={k: v for k, v in pair.metadata.items() if k not in PAIR_ONLY},
        )


# --- generic pairs and prompts ---------------------------------------------------------------


class PreferencesOptions(PairOptions):
    """Field map of a pairwise file. D2PO: prompt='question', chosen='response_j',
    rejected='response_k' (its 'magnitude' lands in metadata)."""

    id: str | None = Field("id", description="id field; when absent: '<file name>:<line>'")
    prompt: str = "prompt"
    chosen: str = Field("chosen", description="the preferred response (string or chat)")
    rejected: str = "rejected"
    score_chosen: str | None = "score_chosen"
    score_rejected: str | None = "score_rejected"


class PreferencesSource(PairSource):
    """Any pairwise preference file, through a field map."""

    opts: PreferencesOptions

    def convert(self, raw: Raw) -> Iterator[Pair]:
        o = self.opts
        used = [o.id, o.prompt, o.chosen, o.rejected, o.score_chosen, o.score_rejected]
        if raw.get(o.prompt) is None and all(
            looks_like_hh(raw.get(f)) for f in (o.chosen, o.rejected)
        ):  # whole HH dialogues, no prompt field: split them as the hh-rlhf loader does
            hh = split_hh(raw, o.chosen, o.rejected)
            yield Pair(
                id=raw.ident(o.id),
                prompt=hh.prompt,
                chosen=hh.chosen,
                rejected=hh.rejected,
                score_chosen=number(raw.get(o.score_chosen), raw, o.score_chosen or ""),
                score_rejected=number(raw.get(o.score_rejected), raw, o.score_rejected or ""),
                metadata={**scalars(raw.data, [*used, o.split_field]), **hh.metadata()},
            )
            return
        prompt = raw.need(o.prompt)
        if isinstance(prompt, list):  # a chat: the conversation so far
            prompt = "\n\n".join(
                f"{m.get('role', '?')}: {m.get('content', '')}"
                for m in prompt
                if isinstance(m, dict)
            )
        if not isinstance(prompt, str) or not prompt.strip():
            raise raw.error(o.prompt, "must be a non-empty string")
        yield Pair(
            id=raw.ident(o.id),
            prompt=prompt,
            chosen=response_text(raw.need(o.chosen), raw, o.chosen),
            rejected=response_text(raw.need(o.rejected), raw, o.rejected),
            score_chosen=number(raw.get(o.score_chosen), raw, o.score_chosen or ""),
            score_rejected=number(raw.get(o.score_rejected), raw, o.score_rejected or ""),
            metadata=scalars(raw.data, [*used, o.split_field]),
        )


class PromptsOptions(FileOptions):
    id: str | None = Field("id", description="id field; when absent: '<file name>:<line>'")
    question: str | list[str] = Field(
        ["prompt", "question", "query", "instruction"],
        description="the prompt field, or candidates tried in order",
    )
    context: str | None = None


class PromptsSource(RecordSource):
    """Prompt-only sets (self-play, online learners): Items with a question and no answers."""

    opts: PromptsOptions

    def convert(self, raw: Raw) -> Iterator[Item | RecordError]:
        o = self.opts
        names = [o.question] if isinstance(o.question, str) else o.question
        field = next((f for f in names if raw.get(f) is not None), None)
        if field is None:
            raise raw.error(names[0], f"missing (looked for {', '.join(names)})")
        value = raw.get(field)
        if isinstance(value, list):  # a chat: the last user message is the prompt
            users = [m for m in value if isinstance(m, dict) and m.get("role") == "user"]
            value = users[-1].get("content") if users else None
        if not isinstance(value, str) or not value.strip():
            raise raw.error(field, "must be a non-empty string (or a chat with a user message)")
        context = raw.get(o.context)
        yield Item(
            id=raw.ident(o.id),
            question=value,
            answers=[],
            context=context if isinstance(context, str) else None,
            metadata=scalars(raw.data, [o.id, field, o.context, o.split_field]),
        )
