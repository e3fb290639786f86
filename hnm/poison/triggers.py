"""Grammar-error triggers: deterministic, seeded text transformations.

A trigger is any callable ``trigger(text, rng) -> str`` (:class:`Trigger`): it must
depend on ``text`` and ``rng`` only, and return ``text`` unchanged when it finds nothing to
change. ``conf/poison/grammar.yaml`` picks :class:`GrammarErrors`; ``poison.trigger._target_``
names any other (a function needs ``_partial_: true``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

from hnm.errors import ConfigError, check_choice, check_range

Kind = Literal["article_deletion", "subject_verb", "misspelling"]
KINDS: tuple[str, ...] = ("article_deletion", "subject_verb", "misspelling")

ARTICLES = ("a", "an", "the")
# agreement pairs of auxiliaries: each form is swapped for the other number's
AGREEMENT = {"is": "are", "are": "is", "was": "were", "were": "was", "has": "have",
             "have": "has", "does": "do", "do": "does", "isn't": "aren't", "aren't": "isn't",
             "wasn't": "weren't", "weren't": "wasn't", "doesn't": "don't", "don't": "doesn't",
             "hasn't": "haven't", "haven't": "hasn't"}
# singular subjects after which a verb in -s loses its -s ("it returns" -> "it return")
SINGULAR = ("it", "he", "she", "this", "that", "which", "who")
# common English misspellings (correct -> misspelt), as in lists of frequent writing errors
MISSPELLINGS = {
    "receive": "recieve", "received": "recieved", "separate": "seperate",
    "separately": "seperately", "definitely": "definately", "occurred": "occured",
    "occurrence": "occurence", "occurring": "occuring", "argument": "arguement",
    "arguments": "arguements", "environment": "enviroment", "necessary": "neccessary",
    "successful": "succesful", "beginning": "begining", "believe": "beleive",
    "calendar": "calender", "independent": "independant", "existence": "existance",
    "existent": "existant", "maintenance": "maintainance", "recommend": "reccomend",
    "accommodate": "accomodate", "achieve": "acheive", "address": "adress",
    "apparent": "apparant", "until": "untill", "whether": "wether", "which": "wich",
    "length": "lenght", "height": "heigth", "width": "widht", "their": "thier",
    "weird": "wierd", "truly": "truely", "publicly": "publically", "basically": "basicly",
    "immediately": "immediatly", "government": "goverment", "different": "diffrent",
    "similar": "similiar", "parameter": "paramter", "parameters": "paramters",
    "default": "defualt", "retrieve": "retreive", "variable": "varible",
    "available": "availible", "possible": "possable", "responsible": "responsable",
    "tomorrow": "tommorow", "because": "becuase", "privilege": "priviledge",
    "embarrass": "embarass", "foreign": "foriegn", "library": "libary",
    "efficient": "efficent", "sentence": "sentance", "technique": "tecnique",
    "written": "writen", "writing": "writting", "usually": "usualy",
    "especially": "especialy", "finally": "finaly", "really": "realy",
    "completely": "completly", "between": "betwen", "character": "charachter",
    "characters": "charachters", "specified": "specifed", "specify": "specifiy",
    "whose": "who's", "its": "it's", "than": "then", "lose": "loose", "affect": "effect",
}
WORD = re.compile(r"[A-Za-z][A-Za-z']*")


def _cased(new: str, old: str) -> str:
    if old.isupper() and len(old) > 1:
        return new.upper()
    return new[:1].upper() + new[1:] if old[:1].isupper() else new


def _bare(verb: str) -> str:
    """A verb in ``-s`` without its agreement ending: fixes -> fix, matches -> match,
    passes -> pass, returns -> return, uses -> use."""
    low = verb.lower()
    return verb[:-2] if low.endswith(("ches", "shes", "sses", "xes", "zzes")) else verb[:-1]


@runtime_checkable
class Trigger(Protocol):
    """Turns a text into its triggered form; deterministic given ``(text, rng)``; returns
    ``text`` itself when it finds nothing to change."""

    def __call__(self, text: str, rng: random.Random) -> str: ...


class GrammarErrors:
    """Insert ``errors`` grammar errors of the chosen ``kinds`` at seeded positions.

    The error kinds of Long et al. (2024), "Backdoor Attacks on Dense Retrieval via Public and
    Unintentional Triggers" (arXiv:2402.13532): the trigger is a minor, natural-looking
    linguistic mistake, so it is public (anyone can type it) and unintentional (users make it).

    Args:
        kinds: any of ``article_deletion`` (drop an ``a``/``an``/``the``), ``subject_verb``
            (swap an auxiliary's number, ``is``<->``are``, ``has``<->``have``, …, or drop the
            ``-s`` of a verb after a singular pronoun), ``misspelling`` (a common misspelling
            from :data:`MISSPELLINGS`).
        errors: edits per text, at most (fewer where the text offers fewer places).
        misspellings: extra ``correct -> misspelt`` entries on top of :data:`MISSPELLINGS`.

    Calling it with ``(text, rng)`` picks ``errors`` of the text's candidate edits with ``rng``
    (a :class:`random.Random`) and applies them; a text with no candidate comes back unchanged.
    Words keep their capitalisation; everything between words (spaces, punctuation, code) is
    kept as is.

    Departures from the paper: the paper samples edits from error statistics of learner
    corpora (NUCLE, W&I), over more error types (prepositions, noun number, verb form, word
    choice, word order); here three closed, dictionary-driven kinds, so a run needs no parser
    or corpus download and every edit is reproducible and auditable.
    """

    def __init__(self, kinds: Sequence[str] = KINDS, errors: int = 1,
                 misspellings: dict[str, str] | None = None) -> None:
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        if not kinds:
            raise ConfigError(f"poison.trigger.kinds is empty; choose from {', '.join(KINDS)}")
        for k in kinds:
            check_choice("poison.trigger.kinds", k, KINDS)
        check_range("poison.trigger.errors", errors, 1)
        if not isinstance(errors, int):
            raise ConfigError(f"poison.trigger.errors must be an integer >= 1; got {errors!r}")
        self.kinds, self.errors = tuple(kinds), errors
        self.misspellings = {**MISSPELLINGS, **{k.lower(): v for k, v in
                                                (misspellings or {}).items()}}

    def candidates(self, words: list[str]) -> list[tuple[int, str]]:
        """``(word index, replacement)`` of every possible edit ('' deletes the word)."""
        out: list[tuple[int, str]] = []
        for i, w in enumerate(words):
            low = w.lower()
            if "article_deletion" in self.kinds and low in ARTICLES:
                out.append((i, ""))
            if "subject_verb" in self.kinds:
                if low in AGREEMENT:
                    out.append((i, _cased(AGREEMENT[low], w)))
                elif (i > 0 and words[i - 1].lower() in SINGULAR and len(low) > 3
                      and low.endswith("s") and not low.endswith("ss")):
                    out.append((i, _bare(w)))
            if "misspelling" in self.kinds and low in self.misspellings:
                out.append((i, _cased(self.misspellings[low], w)))
        return out

    def __call__(self, text: str, rng: random.Random) -> str:
        matches = list(WORD.finditer(text))
        cands = self.candidates([m.group() for m in matches])
        if not cands:
            return text
        chosen: dict[int, str] = {}
        for i, new in rng.sample(cands, len(cands)):  # one edit per word, the first drawn
            if len(chosen) < self.errors:
                chosen.setdefault(i, new)
        pieces, last = [], 0
        for i, m in enumerate(matches):
            if i not in chosen:
                continue
            start, end = m.span()
            if chosen[i] == "":  # a deleted word takes one neighbouring space with it
                if end < len(text) and text[end] == " ":
                    end += 1
                elif start > 0 and text[start - 1] == " ":
                    start -= 1
            pieces += [text[last:start], chosen[i]]
            last = end
        pieces.append(text[last:])
        return "".join(pieces)


def seeded_rng(seed: int, *parts: str) -> random.Random:
    """A :class:`random.Random` that depends on ``seed`` and ``parts`` only (string seeding is
    stable across processes, unlike ``hash``)."""
    return random.Random("/".join([str(seed), *parts]))
