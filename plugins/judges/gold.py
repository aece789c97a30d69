"""`gold`: programmatic judges with a known right answer, as D2PO's synthetic tasks use them.

A gold judge scores each option with a plain function, so a learner's progress can be measured
against a truth no model is guessing at: response length (longer, or closest to a target),
bag-of-words (how many target words the text holds: every occurrence, or with `distinct` each
listed word once, as D2PO's gold function counts), exact-match or numeric answers for math
(the reference from an item_id -> answer file, or computed from the arithmetic in the question),
or any user function given as `module:function`, or `evidence`: how many of an answer's own
content words (those not already in the question) its seat's verified quotes hold, less one per
fabricated quote, read from the protocol's quote check, never from tags in the text. `evidence`
is a per-speech reward blind to which answer is right and to the other side's speech: a simple
stand-in for "argues its case from the passage", not a debate verdict.

What is scored: each option's own text, or the speeches of the seat that argued it (`text`:
"auto" takes the speeches when the seat spoke, else the option text). That makes the same
judge work for answer-choice debates and for protocols whose options are players' responses.

Scores follow the convention of the other scalar judges (`meta["scores"]`, `meta["kind"]`);
with `temperature` 0 the best score takes all the probability (shared on a tie, so equal
scores are a draw), above 0 it is a softmax of score / temperature.
"""

from __future__ import annotations

import ast
import importlib
import json
import math
import operator
import re
import string
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from arena_plugins.text import content_words
from pydantic import BaseModel, ConfigDict, Field, model_validator

from arena_core.interfaces import Judge
from arena_core.types import AnswerOption, Decision, JudgeView

TextSource = Literal["auto", "option", "speech"]


def option_texts(view: JudgeView, source: TextSource = "auto") -> list[str]:
    """The text to score per option: its own text, or its seat's speeches joined."""
    out = []
    for o in view.options:
        spoken = [t.text for t in view.transcript if o.seat is not None and t.seat == o.seat]
        speeches = [
            t.text
            for t in view.transcript
            if o.seat is not None and t.seat == o.seat and t.phase == "speech"
        ]
        said = "\n\n".join(speeches or spoken)
        if source == "option" or (source == "auto" and not said):
            out.append(o.text)
        else:
            out.append(said)
    return out


def to_probs(scores: Sequence[float], temperature: float) -> list[float]:
    """Argmax (ties shared) at temperature 0, else a softmax of score / temperature."""
    if temperature <= 0:
        top = max(scores)
        best = [1.0 if math.isclose(s, top, rel_tol=1e-9, abs_tol=1e-12) else 0.0 for s in scores]
        return [b / sum(best) for b in best]
    top = max(scores)
    e = [math.exp((s - top) / temperature) for s in scores]
    return [v / sum(e) for v in e]


# --- arithmetic and answers -----------------------------------------------------------------------

_OPS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_EXPR = re.compile(r"[-+(]*\s*\d[\d\s.+\-*/%()^x×÷]*")
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?")


def safe_eval(expr: str) -> float:
    """Evaluate + - * / // % ** and parentheses on numbers; anything else raises ValueError."""
    expr = expr.replace("^", "**").replace("×", "*").replace("÷", "/").replace("x", "*")

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 64:
                raise ValueError("exponent too large")
            return float(_OPS[type(node.op)](left, right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return float(_OPS[type(node.op)](ev(node.operand)))
        raise ValueError(f"not arithmetic: {ast.dump(node)[:40]}")

    try:
        return ev(ast.parse(expr.strip(), mode="eval"))
    except (SyntaxError, ZeroDivisionError, OverflowError) as exc:
        raise ValueError(f"cannot evaluate {expr!r}: {exc}") from None


def question_value(question: str) -> float | None:
    """The value of the arithmetic in the question ("What is 3 * (4 + 5)?"): the longest
    expression with an operator, else the longest number."""
    found = [m.group().strip() for m in _EXPR.finditer(question)]
    candidates = sorted(
        found, key=lambda c: (any(op in c[1:] for op in "+-*/%^x×÷"), len(c)), reverse=True
    )
    for c in candidates:
        try:
            return safe_eval(c.rstrip("=?. "))
        except ValueError:
            continue
    return None


def last_number(text: str) -> float | None:
    """The last number written in the text (1,234.5 and 3/4 included)."""
    found = _NUMBER.findall(text)
    if not found:
        return None
    s = found[-1].replace(",", "")
    if "/" in s:
        num, den = s.split("/")
        return float(num) / float(den) if float(den) else None
    return float(s)


def normalize(text: str) -> str:
    """SQuAD-style: lower case, no punctuation, no articles, single spaces."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(w for w in text.split() if w not in ("a", "an", "the"))


def final_answers(text: str) -> list[str]:
    """Where an answer may sit: the text, its last line, what follows 'answer is' / 'Answer:'."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    out = [text]
    if lines:
        out.append(lines[-1])
    m = list(re.finditer(r"answer(?:\s+is|\s*:)\s*(.+)", text, re.IGNORECASE))
    if m:
        out.append(m[-1].group(1))
    return out


def supported_words(answer: str, question: str, verified: Iterable[str]) -> int:
    """How many of an answer's own content words (less the question's) the quotes hold."""
    quoted: set[str] = set()
    for q in verified:
        quoted |= content_words(q)
    return len((content_words(answer) - content_words(question)) & quoted)


def evidence_scores(view: JudgeView) -> list[float]:
    """Per option: `supported_words` over its seat's verified quotes, minus one per fabricated
    quote of that seat."""
    out = []
    for o in view.options:
        checks = [
            t.quotes  # None: nobody checked the turn, so tags in its text prove nothing
            for t in view.transcript
            if o.seat is not None and t.seat == o.seat and t.quotes is not None
        ]
        verified = [q for c in checks for q in c.verified]
        bad = sum(len(c.invalid) for c in checks)
        out.append(float(supported_words(o.text, view.question, verified) - bad))
    return out


# --- the judge ------------------------------------------------------------------------------------


class GoldOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: Literal["length", "bag-of-words", "exact-match", "numeric", "function", "evidence"] = (
        Field(description="what is scored")
    )
    text: TextSource = Field("auto", description="score the option text or its seat's speeches")
    temperature: float = Field(0.0, ge=0, description="0: best score wins; >0: softmax(score/T)")
    unit: Literal["words", "chars"] = Field("words", description="length: what is counted")
    target_length: int | None = Field(
        None, ge=0, description="length: prefer this length (score -|len - target|), not longer"
    )
    words: list[str] = Field(default_factory=list, description="bag-of-words: the target words")
    case_sensitive: bool = Field(False, description="bag-of-words: match case")
    distinct: bool = Field(
        False,
        description="bag-of-words: count each listed word once however often it occurs "
        "(D2PO's bag-of-words gold), instead of every occurrence",
    )
    answers: str | None = Field(
        None, description="exact/numeric: JSON object or JSONL (item_id, answer) of references"
    )
    tolerance: float = Field(1e-6, ge=0, description="numeric: absolute tolerance")
    function: str | None = Field(
        None, description="function: 'module:function', called fn(question, text) -> float"
    )

    @model_validator(mode="after")
    def _needs(self) -> GoldOptions:
        if self.task == "bag-of-words" and not self.words:
            raise ValueError("task 'bag-of-words' needs 'words'")
        if self.task == "function" and not self.function:
            raise ValueError("task 'function' needs 'function' = 'module:function'")
        if self.task == "exact-match" and not self.answers:
            raise ValueError("task 'exact-match' needs 'answers' (a reference file)")
        return self


def load_answers(path: str) -> dict[str, str]:
    """item_id -> reference answer from a JSON object or a JSONL file of {id|item_id, answer}."""
    text = Path(path).read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("{") and "\n{" not in stripped.rstrip():
        data = json.loads(text)
        if isinstance(data, dict) and "answer" not in data:
            return {str(k): str(v) for k, v in data.items()}
    out = {}
    for line in text.splitlines():
        if line.strip():
            row = json.loads(line)
            out[str(row.get("item_id", row.get("id")))] = str(row["answer"])
    return out


def load_function(spec: str) -> Callable[..., Any]:
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"function {spec!r}: expected 'module:function'")
    fn = getattr(importlib.import_module(module), name, None)
    if not callable(fn):
        raise ValueError(f"function {spec!r}: {name} is not a callable in {module}")
    return fn


class GoldJudge(Judge):
    """Scores options with a known-correct rule; see the module docstring."""

    kind = "reward"

    def __init__(self, options: GoldOptions) -> None:
        self.opts = options
        self.answers = load_answers(options.answers) if options.answers else {}
        self.fn = load_function(options.function) if options.function else None
        flags = 0 if options.case_sensitive else re.IGNORECASE
        self.bag = [re.compile(rf"\b{re.escape(w)}\b", flags) for w in options.words]

    def reference(self, view: JudgeView) -> str | None:
        if view.item_id in self.answers:
            return self.answers[view.item_id]
        if self.opts.task == "numeric":
            value = question_value(view.question)
            return None if value is None else repr(value)
        return None

    def score(self, view: JudgeView, option: AnswerOption, text: str) -> float:
        o = self.opts
        if o.task == "length":
            n = len(text.split()) if o.unit == "words" else len(text)
            return float(n if o.target_length is None else -abs(n - o.target_length))
        if o.task == "bag-of-words":
            if o.distinct:
                return float(sum(1 for p in self.bag if p.search(text)))
            return float(sum(len(p.findall(text)) for p in self.bag))
        if o.task == "function":
            assert self.fn is not None
            return float(self.fn(view.question, text))
        ref = self.reference(view)
        if ref is None:
            raise ValueError(f"gold judge: no reference answer for item {view.item_id!r}")
        if o.task == "numeric":
            want = last_number(ref)
            got = last_number(text)
            return float(want is not None and got is not None and abs(got - want) <= o.tolerance)
        return float(any(normalize(c) == normalize(ref) for c in final_answers(text)))

    async def decide(self, view: JudgeView) -> Decision:
        if self.opts.task == "evidence":
            scores = evidence_scores(view)
        else:
            texts = option_texts(view, self.opts.text)
            scores = [self.score(view, o, t) for o, t in zip(view.options, texts, strict=True)]
        listing = ", ".join(f"{o.label}: {s:g}" for o, s in zip(view.options, scores, strict=True))
        return Decision(
            probs=to_probs(scores, self.opts.temperature),
            raw=f"gold {self.opts.task} {listing}",
            meta={"scores": scores, "kind": self.kind, "task": self.opts.task},
        )


def gold_judge(options: GoldOptions) -> Judge:
    """Programmatic gold judges: length, bag-of-words, exact/numeric math, module:function."""
    return GoldJudge(options)
