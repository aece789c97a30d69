"""QuALITY (Pang et al. 2022) and the NYU human debates on it (Michael et al. 2023).

`quality` reads the v1.0.1 htmlstripped JSONL: one record per (article, question writer) with a
`questions` list. Each question becomes an Item whose hidden context is the article, whose
`gold` is the 0-based `gold_label`, and whose `distractor` is the wrong answer a debate argues:
the annotators' most-named `untimed_best_distractor`, else the most-chosen wrong
`untimed_answer`.

`quality-debates` reads `debates-readable.jsonl`: one judging session per line. Each becomes an
Item (question, the two answers, the story as hidden context) carrying the finished debate in
`metadata["transcript"]`, which the `rejudge` protocol judges again and the `replay` agent
speaks from.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from arena_plugins.datasets.records import (
    DatasetError,
    FileOptions,
    Raw,
    RecordError,
    RecordSource,
    read_records,
)
from pydantic import Field

from arena_core.types import Item

SEATS = ("A", "B")  # debater index 0 argues answers[0], index 1 answers[1]


class QualityOptions(FileOptions):
    difficult_only: bool = Field(
        False, description="keep only questions marked difficult (the debate papers' setting)"
    )
    distractor: Literal["best", "most-voted", "first"] = Field(
        "best",
        description="wrong answer to debate: annotators' best distractor (else most-voted "
        "wrong answer), the most-voted wrong answer, or the first wrong option",
    )
    exclude_debated: str | None = Field(
        None,
        description="debates-readable.jsonl or debates-metadata.jsonl: leave out its stories",
    )


def _option(value: Any, n: int) -> int | None:
    """A 1-indexed option number (int or digits) as a 0-based index; None when not one."""
    if isinstance(value, str) and value.strip().isdecimal():  # int() refuses "²"
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= n:
        return value - 1
    return None


class QualitySource(RecordSource):
    """QuALITY v1.0.1 htmlstripped JSONL, one Item per question."""

    opts: QualityOptions
    group_key = "article_id"  # hash splits keep an article's questions together

    def __init__(self, options: QualityOptions) -> None:
        super().__init__(options)
        self._excluded: set[str] | None = None

    def excluded(self) -> set[str]:
        """Story ids of the human-debate set, read once (only the id fields are kept)."""
        if self._excluded is None:
            path = self.opts.exclude_debated
            self._excluded = debated_story_ids(path) if path else set()
        return self._excluded

    def convert(self, raw: Raw) -> Iterator[Item | RecordError]:
        d = raw.data
        if "questions" not in d:
            if any(str(k).startswith("question1") for k in d):
                raise raw.error(
                    "questions",
                    "this is the older flattened QuALITY layout (question1, question1option1 "
                    "...); use the v1.0.1 htmlstripped files, which have a 'questions' list",
                )
            raise raw.error("questions", "missing")
        questions = d["questions"]
        if not isinstance(questions, list):
            raise raw.error("questions", f"must be a list, got {type(questions).__name__}")
        article = raw.text("article")
        article_id = str(raw.get("article_id", "")) or raw.key
        if article_id in self.excluded():
            self.filtered += len(questions)
            return
        base = str(raw.get("set_unique_id", "")) or raw.key
        for qi, q in enumerate(questions):
            field = f"questions.{qi}"
            if not isinstance(q, dict):
                yield raw.error(field, f"expected an object, got {type(q).__name__}")
                continue
            try:
                item = self._question(raw, q, field, article, article_id, f"{base}_{qi + 1}")
            except RecordError as exc:
                yield exc
                continue
            if item is None:
                self.filtered += 1
            else:
                yield item

    def _question(
        self, raw: Raw, q: dict[str, Any], field: str, article: str, article_id: str, fallback: str
    ) -> Item | None:
        question = q.get("question")
        if not isinstance(question, str) or not question.strip():
            raise raw.error(f"{field}.question", "must be a non-empty string")
        options = q.get("options")
        if (
            not isinstance(options, list)
            or len(options) < 2
            or not all(isinstance(o, str) and o.strip() for o in options)
        ):
            raise raw.error(f"{field}.options", "must be a list of at least 2 non-empty strings")
        difficult = q.get("difficult")
        if self.opts.difficult_only:
            if difficult not in (0, 1, True, False):
                raise raw.error(f"{field}.difficult", f"must be 0 or 1, got {difficult!r}")
            if not difficult:
                return None
        n = len(options)
        gold = None
        if q.get("gold_label") is not None:  # the test split has no labels
            gold = _option(q["gold_label"], n)
            if gold is None:
                raise raw.error(
                    f"{field}.gold_label",
                    f"must be an option number 1..{n}, got {q['gold_label']!r}",
                )
        best, chosen = self._votes(raw, q, field, n)
        distractor = None if gold is None else self._distractor(gold, best, chosen)
        ident = q.get("question_unique_id")
        return Item(
            id=str(ident) if isinstance(ident, str | int) and str(ident) else fallback,
            question=question,
            answers=list(options),
            gold=gold,
            context=article,
            distractor=distractor,
            metadata={
                "article_id": article_id,
                "set_unique_id": raw.get("set_unique_id"),
                "title": raw.get("title"),
                "author": raw.get("author"),
                "source": raw.get("source"),
                "difficult": difficult,
                "writer_label": q.get("writer_label"),
                "best_distractor_votes": best,
                "answer_votes": chosen,
            },
        )

    def _votes(
        self, raw: Raw, q: dict[str, Any], field: str, n: int
    ) -> tuple[list[int], list[int]]:
        """Per option: annotators naming it the best distractor, and choosing it (untimed)."""
        best, chosen = [0] * n, [0] * n
        validation = q.get("validation") or []
        if not isinstance(validation, list):
            raise raw.error(f"{field}.validation", "must be a list")
        for j, v in enumerate(validation):
            where = f"{field}.validation.{j}"
            if not isinstance(v, dict):
                raise raw.error(where, "expected an object")
            for key, counts in (("untimed_best_distractor", best), ("untimed_answer", chosen)):
                if v.get(key) is None:
                    continue
                idx = _option(v[key], n)
                if idx is None:
                    raise raw.error(f"{where}.{key}", f"must be an option number 1..{n}")
                counts[idx] += 1
        return best, chosen

    def _distractor(self, gold: int, best: list[int], chosen: list[int]) -> int | None:
        wrong = [i for i in range(len(best)) if i != gold]
        how = self.opts.distractor
        if how == "first":
            return None  # Item.debate_pair takes the first wrong option
        if how == "best" and any(best[i] for i in wrong):
            return max(wrong, key=lambda i: (best[i], chosen[i], -i))
        if any(chosen[i] for i in wrong):
            return max(wrong, key=lambda i: (chosen[i], -i))
        return None


def debated_story_ids(path: str) -> set[str]:
    """Story ids in a debates-readable (storyId) or debates-metadata (sourceMaterialId) file."""
    ids: set[str] = set()
    for raw in read_records(FileOptions(path=path, format="jsonl"), None):
        if "__error__" in raw.data:
            raise raw.error(None, raw.data["__error__"])
        story = raw.get("storyId")
        if story is None:
            story = raw.get("sourceMaterialId.QuALITYStory.id")
        if story is None:
            raise raw.error("storyId", "missing (nor sourceMaterialId.QuALITYStory.id)")
        ids.add(str(story))
    return ids


# --- human debates ----------------------------------------------------------------------------


class QualityDebatesOptions(FileOptions):
    setting: Literal["debate", "consultancy", "all"] = Field(
        "debate", description="debates (both debaters speak), consultancies (one), or both"
    )
    judging: Literal["live", "offline", "all"] = Field(
        "live", description="the live judge's session, offline judges' re-readings, or both"
    )
    debaters: Literal["human", "ai", "all"] = Field(
        "all", description="debates by people, by GPT-4 (role 'GPT-4'), or both"
    )


def _probs(value: Any, raw: Raw, field: str) -> list[float] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(p, int | float) and not isinstance(p, bool) for p in value)
    ):
        raise raw.error(field, f"must be [pA, pB] or null, got {value!r}")
    return [float(p) for p in value]


class QualityDebatesSource(RecordSource):
    """NYU human debates on QuALITY: one Item per judging session, transcript in metadata.

    Ids: `debateId` (else `roomName`, else '<file>:<line>'); an offline judge's session of the
    same debate adds ':offline:<judge>'. Gold: `correctAnswer` when the row has it; otherwise
    derived from `isJudgeCorrect` and the judge's final probabilities (the side the last
    probability-bearing turn favoured if the judge was right, the other side if not); None when
    neither says (gold_source in metadata tells which rule applied).
    """

    opts: QualityDebatesOptions
    group_key = "storyId"  # hash splits keep a story's debates together

    def __init__(self, options: QualityDebatesOptions) -> None:
        super().__init__(options)

    def convert(self, raw: Raw) -> Iterator[Item]:
        story = raw.text("story")
        question = raw.text("question")
        answers = raw.need("answers")
        if (
            not isinstance(answers, list)
            or len(answers) != 2
            or not all(isinstance(a, str) and a.strip() for a in answers)
        ):
            raise raw.error(
                "answers", f"must be a list of 2 non-empty strings, got {answers!r:.80}"
            )
        turns = raw.need("turns")
        if not isinstance(turns, list):
            raise raw.error("turns", "must be a list")
        transcript, seats, offline, ai, final = self._transcript(raw, turns)
        if not seats:
            raise raw.error("turns", "no debater turn (index 0 or 1)")
        setting = "debate" if len(seats) == 2 else "consultancy"
        if (
            self.opts.setting not in ("all", setting)
            or self.opts.judging not in ("all", "offline" if offline else "live")
            or self.opts.debaters not in ("all", "ai" if ai else "human")
        ):
            self.filtered += 1
            return
        gold, source = self._gold(raw, answers, final)
        base = raw.ident("debateId") if raw.get("debateId") else raw.ident("roomName")
        judge = raw.get("judge")
        ident = f"{base}:offline:{judge or raw.key}" if offline else base
        yield Item(
            id=ident,
            question=question,
            answers=list(answers),
            gold=gold,
            context=story,
            metadata={
                "storyId": str(raw.get("storyId", "")) or None,
                "storyTitle": raw.get("storyTitle"),
                "roomName": raw.get("roomName"),
                "debateId": raw.get("debateId"),
                "judge": judge,
                "isJudgeCorrect": raw.get("isJudgeCorrect"),
                "setting": setting,
                "judging": "offline" if offline else "live",
                "ai_debaters": ai,
                "gold_source": source,
                "final_probabilities": final,
                "argued": {SEATS[i]: i for i in sorted(seats)},
                "transcript": transcript,
            },
        )

    def _transcript(
        self, raw: Raw, turns: list[Any]
    ) -> tuple[list[dict[str, Any]], set[int], bool, bool, list[float] | None]:
        """Turns as {seat, round, text, probabilities, role, speaker}; a seat's n-th speech is
        round n (judge turns count their own rounds)."""
        out: list[dict[str, Any]] = []
        spoken: Counter[str] = Counter()
        seats: set[int] = set()
        offline = ai = False
        final = None
        for j, t in enumerate(turns):
            field = f"turns.{j}"
            if not isinstance(t, dict):
                raise raw.error(field, "expected an object")
            role = str(t.get("role") or "")
            text = t.get("text")
            if not isinstance(text, str):
                raise raw.error(f"{field}.text", "must be a string")
            index = t.get("index")
            if index is not None and index not in (0, 1):
                raise raw.error(f"{field}.index", f"must be 0, 1 or null, got {index!r}")
            probs = _probs(t.get("probabilities"), raw, f"{field}.probabilities")
            offline = offline or role.startswith("Offline Judge")
            if index is None:
                seat = "judge"
                final = probs if probs is not None else final
            else:
                seat = SEATS[index]
                seats.add(index)
                ai = ai or role == "GPT-4" or t.get("speaker") == "GPT-4"
            out.append(
                {
                    "seat": seat,
                    "round": spoken[seat],
                    "text": text,
                    "probabilities": probs,
                    "role": role,
                    "speaker": t.get("speaker"),
                }
            )
            spoken[seat] += 1
        return out, seats, offline, ai, final

    def _gold(
        self, raw: Raw, answers: list[str], final: list[float] | None
    ) -> tuple[int | None, str | None]:
        correct = raw.get("correctAnswer")
        if correct is not None:
            if isinstance(correct, str) and correct in answers:
                return answers.index(correct), "correctAnswer"
            if isinstance(correct, int) and not isinstance(correct, bool) and correct in (0, 1):
                return correct, "correctAnswer"
            raise raw.error("correctAnswer", f"is neither of the two answers: {correct!r:.80}")
        right = raw.get("isJudgeCorrect")
        if isinstance(right, bool) and final is not None and final[0] != final[1]:
            favoured = 0 if final[0] > final[1] else 1
            return (favoured if right else 1 - favoured), "judge"
        return None, None


def check_path(path: str) -> None:
    """Fail early (at build time) on a local path that is plainly missing."""
    if "{split}" not in path and "*" not in path and not Path(path).exists() and "/" not in path:
        raise DatasetError(f"{path}: no such file")
