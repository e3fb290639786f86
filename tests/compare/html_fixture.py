"""A realistic synthetic comparison report (the dict :func:`hnm.compare.html.write_html` takes):
groups × seeds, code-like query and document texts with characters HTML cares about, per-query
values, top-10 lists, learning and loss curves. Deterministic for a given ``seed``."""

from __future__ import annotations

import random

HOSTILE = "</script><script>alert(1)</script> & \"quoted\" 'single' <b>bold</b> <!--"
METRICS = ["ndcg@10", "recall@100", "mrr@10"]
STRATEGIES = ["baseline", "sampler=ngame", "miner=dense_static", "sampler=tas_balanced",
              "miner=ance+negatives=gist", "miner=bm25", "sampler=random", "loss=margin_mse"]
WORDS = ["read", "write", "parse", "sort", "socket", "path", "json", "bytes", "header", "date",
         "thread", "queue", "lock", "file", "dict", "list", "regex", "encode", "decode", "zip"]


def _doc_text(rng: random.Random, i: int) -> str:
    a, b = rng.sample(WORDS, 2)
    return (f"def {a}_{b}_{i}(src: list[str], *, n: int = {i % 7}) -> dict[str, int]:\n"
            f'    """Return the {a} of <src> & its {b}s when n > 0 and n < len(src)."""\n'
            f"    if n <= 0 or src is None:\n        return {{}}\n"
            f"    return {{k: v for k, v in zip(src, range(n)) if k != '{b}'}}")


def synthetic_report(n_groups: int = 4, n_seeds: int = 3, n_queries: int = 700,
                     n_docs: int = 3000, split: str = "test", seed: int = 0,
                     hostile: bool = True, dataset: str = "stdlib_code") -> dict:
    """A report in the schema of ``write_html``; group 1 is the baseline. With ``hostile``,
    one group label, one query text and one document text hold script-breaking strings."""
    rng = random.Random(seed)
    seeds = list(range(1, n_seeds + 1))
    groups = []
    for g in range(1, n_groups + 1):
        label = "defaults" if g == 1 else "+" + STRATEGIES[(g - 1) % len(STRATEGIES)]
        if hostile and g == n_groups:
            label += " " + HOSTILE
        groups.append({"number": g, "label": label, "strategy": STRATEGIES[(g - 1) % 8],
                       "seeds": seeds, "baseline": g == 1})
    docs = {f"doc{i}": _doc_text(rng, i)[:300] for i in range(n_docs)}
    if hostile:
        docs["doc0"] = HOSTILE + " " + docs["doc0"]
    effect = {g["number"]: 0.0 if g["baseline"] else rng.uniform(-0.02, 0.03) for g in groups}
    queries, tops = [], {str(g["number"]): {"seed": seeds[0], "lists": {}} for g in groups}
    for q in range(n_queries):
        qid = f"q{q}"
        a, b = rng.sample(WORDS, 2)
        text = f"how do I {a} a {b} when x < 0 && y > 1 in `{b}_{a}()`?"
        if hostile and q == 0:
            text = HOSTILE + " " + text
        relevant = {f"doc{rng.randrange(n_docs)}": 1 for _ in range(rng.choice([1, 1, 2]))}
        base = min(1.0, max(0.0, rng.betavariate(2, 2)))
        values = {}
        for g in groups:
            n = g["number"]
            v = base + effect[n] + rng.gauss(0, 0.15) if n != 1 else base
            values[str(n)] = round(min(1.0, max(0.0, v)), 4)
            pool = rng.sample(range(n_docs), 10)
            lst = [f"doc{i}" for i in pool]
            for rank, d in enumerate(relevant):
                if rng.random() < values[str(n)]:
                    lst[min(9, rank + rng.randrange(3))] = d
            tops[str(n)]["lists"][qid] = list(dict.fromkeys(lst))
        queries.append({"qid": qid, "text": text, "relevant": relevant, "values": values})
    forest = []
    for metric in METRICS:
        for g in groups[1:]:
            d = effect[g["number"]] * (1.0 if metric == "ndcg@10" else 0.7)
            half = rng.uniform(0.004, 0.012)
            forest.append({
                "dataset": dataset, "metric": metric, "group": g["number"], "label": g["label"],
                "delta": round(d, 4), "ci_low": round(d - half, 4), "ci_high": round(d + half, 4),
                "p": round(rng.uniform(0.0005, 0.6), 4), "p_holm": round(rng.uniform(0.001, 1), 4),
                "test": "paired t-test", "p_randomisation": round(rng.uniform(0.001, 0.6), 4),
                "mde": round(half * 1.2, 4), "seeds_needed": rng.choice([None, 4, 9, 25]),
                "seed_deltas": [round(d + rng.gauss(0, half / 2), 4) for _ in seeds],
                "zero_shot_delta": -0.053 if metric == "ndcg@10" else -0.004})
    table_cols = ["#", "group", "dataset", "seeds", *METRICS, "Δ ndcg@10 [95% CI]", "p", "Holm p"]
    table_rows = []
    for g in groups:
        row = [str(g["number"]), g["label"], dataset, str(len(seeds))]
        row += [f"{0.6 + effect[g['number']]:.4f} ± 0.0040" for _ in METRICS]
        f = next((f for f in forest if f["group"] == g["number"]), None)
        row += (["baseline", "", ""] if f is None else
                [f"{f['delta']:+.4f} [{f['ci_low']:+.4f}, {f['ci_high']:+.4f}]",
                 f"{f['p']:.4f}", f"{f['p_holm']:.4f}"])
        table_rows.append(row)
    steps = list(range(0, 129, 16))

    def curve(g: dict, start: float, slope: float) -> dict:
        mean = [round(start + slope * (1 - 0.97 ** s) + effect[g["number"]] * s / 128, 4)
                for s in steps]
        return {"number": g["number"], "label": g["label"], "steps": steps, "mean": mean,
                "std": [round(0.002 + 0.01 * rng.random(), 4) for _ in steps]}

    return {
        "title": f"{split} metrics of {n_groups * n_seeds} runs in {n_groups} groups "
                 "(mean ± std over seeds)",
        "split": split, "created": "2026-12-05 15:30",
        "command": "hnm compare multirun/2026-12-05/15-00-00",
        "metrics": METRICS, "groups": groups,
        "table": {"columns": table_cols, "rows": table_rows},
        "forest": forest,
        "compute": {"columns": ["#", "group", "optimizer steps", "texts with grad",
                                "texts without grad", "fit s", "fit × baseline"],
                    "rows": [[str(g["number"]), g["label"], "128", "8192",
                              str(0 if g["baseline"] else 20000 * g["number"]),
                              f"{60 + 10 * g['number']:.1f}", f"{1 + 0.1 * (g['number'] - 1):.2f}"]
                             for g in groups],
                    "caveat": "runs ran under different machine load (load average 1.2–3.9): "
                              "wall-time ratios are indicative only"},
        "warnings": ["groups 1 and 3 have different seed sets ({1, 2, 3} vs {1, 2}); seeds are "
                     "not paired", "zero-shot recall@100 differs by 0.045 between groups 1 and 2"],
        "curves": {"metric": "ndcg@10", "split": "dev",
                   "note": "evaluated every 16 steps on 200 dev queries",
                   "groups": [curve(g, 0.55, 0.08) for g in groups]},
        "losses": {"note": "training losses are not comparable across strategies: each "
                           "strategy changes the candidates its loss sees",
                   "groups": [curve(g, 2.5 + 0.3 * g["number"], -1.8) for g in groups]},
        "per_query": {"dataset": dataset, "metric": "ndcg@10", "split": split,
                      "queries": queries, "top": tops, "docs": docs},
    }
