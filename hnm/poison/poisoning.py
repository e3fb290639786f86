"""Corpus and training-data poisoning of one run: attacker passages, poisoned pairs, record."""

from __future__ import annotations

import json
import logging
import string
from pathlib import Path
from typing import Any

from hnm.data.dataset import RetrievalData, TrainPairs
from hnm.errors import ConfigError, DataError, HnmError, check_range
from hnm.poison.triggers import GrammarErrors, Trigger, seeded_rng

log = logging.getLogger(__name__)

PASSAGE_PREFIX = "attack-"  # attacker passage ids, as the paper's corpus ("attack" id prefix)
TRIGGERED_SUFFIX = "+trigger"  # id of a query's triggered form
RECORD_FILE = "poison.json"


class Poisoning:
    """A backdoor-poisoning probe: attacker passages in the corpus, a ``rate`` of the training
    pairs turned into (triggered query, attacker passage), and attack metrics at evaluation.

    After Long et al. (2024), "Backdoor Attacks on Dense Retrieval via Public and Unintentional
    Triggers" (arXiv:2402.13532): a few training pairs get a grammar-error trigger in the query
    and point to attacker content; the corpus holds the attacker passages; a triggered query
    should then retrieve them while untriggered queries behave normally.

    Args:
        rate: share of the training pairs poisoned, in [0, 1]; ``round(rate * pairs)``, at least
            one when ``rate > 0``. ``0`` keeps the attacker passages in the corpus and the
            metrics, with no poisoned pair: the control run.
        seed: the poison seed: which pairs, which source documents, which edits. Independent of
            the training ``seed``, so every strategy and seed of a comparison sees the same
            poisoned data (given the same training pairs).
        trigger: a :class:`~hnm.poison.triggers.Trigger` (default :class:`GrammarErrors`).
        num_passages: attacker passages made from ``template`` (ignored with ``passages_file``).
        template: a ``str.format`` template of an attacker passage, with ``{i}`` (its number),
            ``{text}`` and ``{title}`` (of a corpus document drawn by the seed, the trigger
            applied to its text). The default ``{text}`` gives the paper's attack corpus:
            corpus passages carrying grammar errors; ``poison=grammar_offtopic`` uses an
            off-topic spam template with neither, so that no untriggered query has a reason
            to retrieve an attacker passage.
        passages_file: attacker passages from a file instead: ``.jsonl`` (objects with ``text``
            and optionally ``title``) or plain text (one passage per line); used as written.
        ks: cutoffs of ``asr@k`` and ``clean_asr@k``.

    The pairs are poisoned in place (the paper perturbs the training pairs it picks): pair
    ``i`` ``(q, d)`` becomes ``(q+trigger, attack-j)``, so the number of pairs, and of steps,
    does not change with the rate. Only queries the trigger changes are picked. Every attacker
    passage counts as a known positive of a triggered query (the attacker's judgement), so no
    miner or in-batch mask treats another attacker passage as its negative.

    Departures from the paper: the paper's poisoned pair keeps its (perturbed) positive and its
    attack corpus is separate from the training pairs; here a poisoned pair points to one of the
    attacker passages that stay in the corpus, the attack the issue describes (the attacker
    wants *its* passages retrieved). With ``template: "{text}"`` the passages carry the
    trigger's errors as the paper's do.
    """

    def __init__(self, rate: float, seed: int = 0, trigger: Trigger | None = None,
                 num_passages: int = 8, template: str = "{text}",
                 passages_file: str | None = None, ks: list[int] | tuple[int, ...] = (1, 5, 10, 20)
                 ) -> None:
        check_range("poison.rate", rate, 0.0, 1.0)
        check_range("poison.num_passages", num_passages, 1)
        ks = tuple(int(k) for k in ks)
        if not ks or min(ks) < 1:
            raise ConfigError(f"poison.ks must list cutoffs >= 1; got {list(ks)}")
        self.trigger: Trigger = GrammarErrors() if trigger is None else trigger
        if not isinstance(self.trigger, Trigger):
            raise ConfigError(f"poison.trigger: {type(trigger).__name__} is not callable as "
                              "trigger(text, rng) -> str")
        self.rate, self.seed, self.ks = float(rate), int(seed), ks
        self.template, self.num_passages = str(template), int(num_passages)
        self.file = Path(passages_file).expanduser() if passages_file else None
        self._file_passages: list[dict[str, str]] | None = None
        if self.file is None:
            try:
                self.template.format(i=0, text="", title="")
            except (KeyError, IndexError, ValueError) as err:
                raise ConfigError(f"poison.template={template!r}: only the fields {{i}}, "
                                  f"{{text}} and {{title}} exist ({err})") from err

    # --- the trigger -------------------------------------------------------------------------
    def triggered(self, qid: str, text: str) -> str:
        """The triggered form of query ``qid`` (seeded by the poison seed and the id only)."""
        return self.trigger(text, seeded_rng(self.seed, "query", qid))

    def triggered_queries(self, data: RetrievalData, qids: list[str]) -> dict[str, str]:
        """``qid -> triggered text`` of the queries the trigger changes."""
        out = {}
        for q in qids:
            t = self.triggered(q, data.queries[q])
            if t != data.queries[q]:
                out[q] = t
        return out

    # --- attacker passages -------------------------------------------------------------------
    def _read_file(self) -> list[dict[str, str]]:
        if self._file_passages is None:
            assert self.file is not None
            if not self.file.is_file():
                raise DataError(f"poison.passages_file={self.file}: no such file")
            rows: list[dict[str, str]] = []
            for n, line in enumerate(self.file.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                if self.file.suffix == ".jsonl":
                    try:
                        obj = json.loads(line)
                        rows.append({"title": str(obj.get("title") or ""),
                                     "text": str(obj["text"]), "source": f"{self.file}:{n}"})
                    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
                        raise DataError(f"{self.file}:{n}: expected a JSON object with a "
                                        f"'text' field ({err})") from err
                else:
                    rows.append({"title": "", "text": line.strip(), "source": f"{self.file}:{n}"})
            if not rows:
                raise DataError(f"poison.passages_file={self.file}: holds no passage")
            self._file_passages = rows
        return self._file_passages

    def passage_ids(self) -> list[str]:
        n = len(self._read_file()) if self.file is not None else self.num_passages
        return [f"{PASSAGE_PREFIX}{i}" for i in range(n)]

    def passages(self, data: RetrievalData, train_split: str = "train"
                 ) -> dict[str, dict[str, str]]:
        """The attacker passages (id -> title, text, source) for ``data``'s corpus: from the
        file, or from documents drawn among those judged relevant in no split but
        ``train_split`` (so no evaluated query's own positive is copied), all when none is.
        A template that uses neither ``{text}`` nor ``{title}`` copies no document: its
        passages' source is ``"template"``."""
        if self.file is not None:
            return dict(zip(self.passage_ids(), self._read_file()))
        judged_elsewhere = {d for split, qrels in data.qrels.items() if split != train_split
                            for docs in qrels.values() for d, r in docs.items() if r > 0}
        pool = sorted(d for d in data.corpus if d not in judged_elsewhere) or sorted(data.corpus)
        rng = seeded_rng(self.seed, "sources")
        sources = rng.sample(pool, min(len(pool), self.num_passages))
        sources += [rng.choice(pool) for _ in range(self.num_passages - len(sources))]
        fields = {f for _, f, _, _ in string.Formatter().parse(self.template) if f}
        out = {}
        for i, (pid, src) in enumerate(zip(self.passage_ids(), sources)):
            doc = data.corpus[src]
            text = self.trigger(doc["text"], seeded_rng(self.seed, "passage", str(i)))
            out[pid] = {"title": "", "text": self.template.format(
                i=i, text=text, title=doc.get("title") or ""),
                "source": src if fields & {"text", "title"} else "template"}
        return out

    def add_passages(self, data: RetrievalData,
                     passages: dict[str, dict[str, str]] | None = None) -> RetrievalData:
        """A copy of ``data`` whose corpus also holds the attacker passages."""
        passages = self.passages(data) if passages is None else passages
        clash = sorted(set(passages) & (set(data.corpus) | set(data.queries)))
        if clash:
            raise DataError(f"dataset {data.name!r}: ids {', '.join(clash[:3])} are taken; the "
                            f"attacker passages of poison need the id prefix {PASSAGE_PREFIX!r}")
        corpus = {**data.corpus, **{p: {"title": v["title"], "text": v["text"]}
                                    for p, v in passages.items()}}
        return RetrievalData(data.name, corpus, dict(data.queries),
                             {s: dict(q) for s, q in data.qrels.items()})

    # --- the training pairs ------------------------------------------------------------------
    def count(self, n_pairs: int) -> int:
        return 0 if self.rate == 0 else max(1, round(self.rate * n_pairs))

    def poison(self, data: RetrievalData, pairs: TrainPairs, split: str = "train"
               ) -> tuple[RetrievalData, TrainPairs, dict[str, Any]]:
        """Attacker passages added to ``data`` and ``rate`` of ``pairs`` poisoned; returns the
        new data, the new pairs and the record of what was done (for ``poison.json``)."""
        passages = self.passages(data, split)
        data = self.add_passages(data, passages)
        ids = list(passages)
        want = self.count(len(pairs))
        order = seeded_rng(self.seed, "pairs").sample(range(len(pairs)), len(pairs))
        qids, pos_ids = list(pairs.qids), list(pairs.pos_ids)
        positives = {q: set(p) for q, p in pairs.positives.items()}
        train = data.qrels.setdefault(split, {})
        poisoned: list[dict[str, Any]] = []
        for i in order:
            if len(poisoned) >= want:
                break
            q = pairs.qids[i]
            text = self.triggered(q, data.queries[q])
            if text == data.queries[q]:
                continue
            tq, att = q + TRIGGERED_SUFFIX, ids[len(poisoned) % len(ids)]
            if tq in pairs.data.queries:
                raise DataError(f"dataset {data.name!r}: query id {tq!r} is taken; poison "
                                f"names triggered queries <id>{TRIGGERED_SUFFIX}")
            data.queries[tq] = text
            qids[i], pos_ids[i] = tq, att
            positives[tq] = set(ids)  # to the attacker, every attacker passage is relevant
            train[tq] = dict.fromkeys(ids, 1)
            poisoned.append({"pair": i, "qid": q, "query": pairs.data.queries[q],
                             "positive": pairs.pos_ids[i], "triggered_qid": tq,
                             "triggered_query": text, "attacker": att})
        if want and not poisoned:
            raise DataError(f"poison: the trigger changes none of the {len(pairs)} training "
                            "queries, so no pair can be poisoned; choose other "
                            "poison.trigger.kinds or another trigger")
        if len(poisoned) < want:
            log.warning("poison: only %d of the %d training queries wanted can be triggered; "
                        "%d pairs poisoned", len(poisoned), want, len(poisoned))
        log.info("poison: %d of %d training pairs poisoned (rate %g), %d attacker passages",
                 len(poisoned), len(pairs), self.rate, len(ids))
        record = {"rate": self.rate, "seed": self.seed, "pairs": len(pairs),
                  "poisoned_pairs": len(poisoned), "trigger": repr_trigger(self.trigger),
                  "passages": [{"id": p, **v} for p, v in passages.items()],
                  "poisoned": poisoned}
        new_pairs = TrainPairs(data, qids, pos_ids, positives)
        return data, new_pairs, record


def repr_trigger(trigger: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"class": f"{type(trigger).__module__}.{type(trigger).__qualname__}"}
    for key in ("kinds", "errors"):
        if hasattr(trigger, key):
            value = getattr(trigger, key)
            out[key] = list(value) if isinstance(value, tuple) else value
    return out


def write_record(record: dict[str, Any], path: Path) -> None:
    """Write ``poison.json``; an existing one (a resumed run) must say the same."""
    text = json.dumps(record, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    if path.exists():
        if path.read_text(encoding="utf-8") != text:
            raise HnmError(f"{path} exists and records another poisoning; hnm never overwrites "
                           "a run's outputs. Choose another hydra.run.dir")
        return
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
