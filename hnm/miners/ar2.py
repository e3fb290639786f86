"""AR2: a cross-encoder ranker and the bi-encoder retriever trained together, in turns."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from hnm.errors import ConfigError, check_range
from hnm.losses.teacher import explicit_negative_columns
from hnm.miners.ance import AnceMiner
from hnm.miners.ranker import CrossEncoderRanker
from hnm.types import Phase, ScoreContext

log = logging.getLogger(__name__)

RANKER_DEFAULTS: dict[str, Any] = {"model": None, "lr": None, "weight_decay": None,
                                   "max_length": 256, "temperature": 1.0, "seed": 0}
# ``ranker.model``: a copy of the starting encoder's transformer with a fresh seeded head
FRESH = "fresh"
# why ``ranker.model: null`` (the YAML's default) refuses to start, and what to give instead
NO_RANKER = (
    "+miner=ar2 needs a ranker; none was given (miner.ranker.model is null). Give a trained "
    "sentence-transformers CrossEncoder with miner.ranker.model=PATH (a folder or hub name), "
    "or opt in to an untrained one with miner.ranker.model=fresh (a copy of the starting "
    "encoder's transformer with a fresh one-logit head), knowing that in short runs it stays "
    "at chance and its KL term pulls the retriever down: it scored nDCG@10 -0.0626 on "
    "stdlib_code test (32 steps, 3 seeds), below the starting model. AR2 itself warms up its "
    "ranker before training the retriever against it")


class AR2Miner(AnceMiner):
    """Adversarial retriever-ranker: a cross-encoder ranker learns to pick the positive among
    the retriever's top candidates; the retriever learns towards the ranker's distribution over
    them; the candidates are re-retrieved with the current retriever on ANCE's schedule.

    The candidates of a training pair are its positive and its ``num_negatives`` mined
    negatives, drawn from the current retriever's top ranks exactly as
    :class:`~hnm.miners.ance.AnceMiner` does (first from the starting model, then re-mined
    every ``refresh_every_n_steps`` / ``refresh_every_fraction`` of the run, with the shared
    rank window and filters). Training alternates within every refresh period (an AR2
    *iteration*: re-retrieve, train the ranker, train the retriever), with ``alternate=true``:

    - the first ``ranker_fraction`` of the period's optimizer steps train the **ranker** only:
      listwise cross-entropy of the positive among the pair's ``1+k`` candidates,
      ``-log softmax(r)_pos`` over the ranker's logits ``r`` (AR2's ``J^φ``); the retriever's
      loss is left out of the step's objective, so its weights get no gradient;
    - the other steps train the **retriever** only: the configured loss (in-batch plus mined
      negatives) plus ``kl_weight · KL(p_φ || p_θ)`` over the same candidates, with
      ``p_φ = softmax(r / ranker.temperature)`` from the ranker (eval mode, no gradient) and
      ``p_θ = softmax(s / t)`` from the retriever's scores at the loss temperature ``t``
      (AR2's distillation term), plus ``adv_weight ·`` AR2's adversarial term
      ``Σ_d log σ(r_pos − r_d) · log p_θ(d)`` (the retriever's REINFORCE-style objective:
      more probability on the candidates the ranker confuses with the positive; 0 by
      default, as ``adv_lambda`` in the authors' code).

    Exposure: with ``alternate=true`` the retriever is updated only in the retriever steps
    (``1 - ranker_fraction`` of each period), so against a baseline with the same
    ``max_steps`` it learns from about half the batches; :meth:`check_schedule` logs the counts.
    With ``alternate=false`` both are trained in every step (one objective: the ranker's
    cross-entropy plus the retriever's terms, the ranker's distribution detached). Masked
    candidates (known positives, duplicates) take part in neither term. Both models are
    trained by the module's one AdamW and its schedule: the ranker is a model this miner
    declares (:meth:`models`), the training module's ``ranker`` (in every checkpoint, moving
    with the module),
    with its own parameter group (``ranker.lr``, ``ranker.weight_decay``; null = the
    module's). After training it is saved in the run folder as ``ranker/`` (a
    sentence-transformers ``CrossEncoder`` folder), and ``hnm eval model=RUN
    eval.rerank_top_k=K`` re-ranks each query's dense top ``K`` with it.

    The ranker (``ranker.model``): the path or name of a trained sentence-transformers
    ``CrossEncoder``; or ``fresh``, built from the starting encoder's transformer (a copy of
    its weights and tokenizer, a fresh one-logit head seeded by ``ranker.seed``). Null (the
    YAML's default) refuses to start (:data:`NO_RANKER`): a fresh head needs far more steps
    than a short run has to get past chance.

    Extra compute, per optimizer step: the ranker reads ``B·(1+k)`` (query, document) pairs
    of up to ``ranker.max_length`` tokens, with a backward pass in ranker steps and without
    one in retriever steps, besides the retriever's own forward/backward (in ranker steps the
    retriever's forward still runs, for the step's telemetry, but no backward); plus ANCE's
    corpus re-encoding at every refresh.

    :meth:`effect` adds ``ranker_steps`` and ``retriever_steps`` (steps of each phase),
    ``pairs_ranked`` (pairs the ranker scored) and ``candidates_distilled`` (candidates whose
    ranker probability entered a KL term) to ANCE's figures; ``ctx.logs`` carries
    ``ar2_phase`` (1 ranker, 0 retriever, 2 joint), ``ar2_ranker_ce``, ``ar2_kl`` and
    ``ar2_ranker_top1`` (how often the ranker puts the positive first).

    Implements AR2 (Zhang et al., ICLR 2022, "Adversarial Retriever-Ranker for Dense Text
    Retrieval"; the authors' code: microsoft/AR2). Departures: AR2 starts from a warmed-up
    retriever and a ranker trained on its negatives, runs iterations of thousands of steps
    with separate optimizers and schedules for the two models, and retrieves 15+ negatives
    per query from the full index each iteration; here the two models share one AdamW (own
    parameter groups, one linear schedule), there is no warm-up of the ranker (give a trained
    ``CrossEncoder``, or ``fresh``: the starting encoder with an untrained head, deliberately;
    without either hnm refuses to start), an iteration is the ANCE refresh period of this run,
    negatives come from ANCE's pool (its rank window and sampling), and the retriever's
    configured contrastive loss (in-batch negatives included) is kept beside the KL term
    (AR2's retriever objective has only the candidate-list terms). Under DDP the ranker scores
    the gathered global batch on every rank (the same result, repeated work), and the
    retriever gets no gradient in ranker steps, which DDP's unused-parameter check may refuse.

    Args:
        ranker: the ranker's knobs: ``model`` (a CrossEncoder's path or name; ``fresh``:
            from the starting encoder with a fresh head; null: refused), ``lr``,
            ``weight_decay`` (null: the module's), ``max_length`` (256), ``temperature``
            (1.0, of the ranker's softmax), ``seed`` (of the fresh head).
        alternate: alternate ranker and retriever steps within each refresh period (AR2);
            false: train both in every step.
        ranker_fraction: the share of each period's steps that train the ranker, in (0, 1);
            at least one step of each phase (a period of one step is refused with
            ``alternate``).
        kl_weight: weight of the KL term of the retriever.
        adv_weight: weight of AR2's adversarial term of the retriever.
        **kwargs: the knobs of :class:`~hnm.miners.ance.AnceMiner`.

    Recommended with ``loss=infonce``, a few to 15 negatives per pair from a window of the
    top 30–100 (``range_max``), and a ranker learning rate no higher than the retriever's.
    The ranker must be better than chance for its KL term to teach anything: a fresh head
    (``ranker.model=fresh``) learns slowly, and in a short run (the README's 32 steps, 16 of
    them ranker steps) it stayed at chance (``ar2_ranker_ce`` ≈ ln(1+k), ``ar2_ranker_top1``
    ≈ 1/(1+k) in the step logs), so the KL pulled the positive's and the negatives' scores
    together and the retriever ended below the starting model. AR2 itself starts from a
    warmed-up ranker: give ``ranker.model`` a trained ``CrossEncoder`` or train far longer.
    """

    phases = (Phase.BEFORE_STEP, Phase.ATTACH_NEGATIVES, Phase.OBJECTIVE)
    not_state = ("ranker",)  # models it holds, not its state (hnm.state)

    def __init__(self, ranker: Mapping[str, Any] | None = None, alternate: bool = True,
                 ranker_fraction: float = 0.5, kl_weight: float = 1.0, adv_weight: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        knobs = dict(RANKER_DEFAULTS)
        unknown = set(ranker or {}) - set(RANKER_DEFAULTS)
        if unknown:
            raise ConfigError(f"miner.ranker: unknown knob(s) {', '.join(sorted(unknown))}; "
                              f"expected {', '.join(RANKER_DEFAULTS)}")
        knobs.update(dict(ranker or {}))
        check_range("miner.ranker_fraction", ranker_fraction, 0.0, 1.0, low_open=True,
                    high_open=True)
        check_range("miner.ranker.temperature", knobs["temperature"], 0.0, low_open=True)
        check_range("miner.kl_weight", kl_weight, 0.0, None)
        check_range("miner.adv_weight", adv_weight, 0.0, None)
        if int(knobs["max_length"]) < 8:
            raise ConfigError(f"miner.ranker.max_length must be >= 8; got {knobs['max_length']}")
        if alternate is False and kl_weight == 0 and adv_weight == 0:
            log.warning("ar2: kl_weight=0 and adv_weight=0: the ranker trains but never "
                        "teaches the retriever")
        self.ranker_knobs = knobs
        self.alternate = bool(alternate)
        self.ranker_fraction = float(ranker_fraction)
        self.kl_weight, self.adv_weight = float(kl_weight), float(adv_weight)
        self.ranker: CrossEncoderRanker | None = None
        self._ar2 = {"ranker_steps": 0, "retriever_steps": 0, "pairs_ranked": 0,
                     "candidates_distilled": 0}
        self._last_step: int | None = None

    # -- the ranker -------------------------------------------------------------------------
    def models(self, encoder: Any, doc_encoder: Any) -> dict[str, Any]:
        """The ranker (the CrossEncoder ``ranker.model`` names, or with ``fresh`` the starting
        ``encoder``'s transformer and a new head), declared as the training module's
        ``ranker`` (trained by its optimizer, in every checkpoint). No ranker refuses the run
        here, when training builds the module and before any step (:data:`NO_RANKER`);
        ``hnm mine``, which never uses the ranker, is not refused."""
        k = self.ranker_knobs
        if k["model"] is None or not str(k["model"]).strip():
            raise ConfigError(NO_RANKER)
        if str(k["model"]) == FRESH:
            self.ranker = CrossEncoderRanker.from_encoder(encoder, int(k["max_length"]),
                                                          int(k["seed"]))
        else:
            self.ranker = CrossEncoderRanker.from_cross_encoder(str(k["model"]), k["max_length"])
        return {"ranker": self.ranker}

    def param_groups(self) -> list[dict[str, Any]]:
        """The ranker's parameters with ``ranker.lr`` / ``ranker.weight_decay`` when set."""
        if self.ranker is None:
            return []
        group: dict[str, Any] = {"params": list(self.ranker.parameters())}
        if self.ranker_knobs["lr"] is not None:
            group["lr"] = float(self.ranker_knobs["lr"])
        if self.ranker_knobs["weight_decay"] is not None:
            group["weight_decay"] = float(self.ranker_knobs["weight_decay"])
        return [group]

    def save_models(self, folder: Any) -> list[str]:
        """Save the ranker as ``<run>/ranker`` (a CrossEncoder folder)."""
        from hnm.runinfo import claim

        if self.ranker is None:
            return []
        self.ranker.save(claim(Path(folder) / "ranker", "a saved ranker"))
        return ["ranker"]

    def frozen_models(self) -> list[Any]:
        """ANCE's snapshot, and the ranker in retriever steps (eval mode, no dropout)."""
        out = super().frozen_models()
        step = None if self._view is None else self._view.step
        if self.ranker is not None and step is not None and self.phase(int(step)) == "retriever":
            out.append(self.ranker)
        return out

    # -- the schedule -----------------------------------------------------------------------
    def ranker_steps_per_period(self, period: int) -> int:
        return min(max(1, round(self.ranker_fraction * period)), max(period - 1, 1))

    def phase(self, step: int) -> str:
        """``ranker``, ``retriever`` or ``joint`` (``alternate=false``) at optimizer ``step``."""
        if not self.alternate:
            return "joint"
        period = self.period
        return "ranker" if step % period < self.ranker_steps_per_period(period) else "retriever"

    def check_schedule(self, epochs: int, steps: int) -> None:
        """ANCE's checks, and a period long enough to hold both phases."""
        super().check_schedule(epochs, steps)
        if self.alternate and self.period < 2:
            raise ConfigError(
                f"miner.alternate=true needs a refresh period of at least 2 optimizer steps "
                f"(one for the ranker, one for the retriever); the period is {self.period}. "
                "Raise miner.refresh_every_n_steps (or miner.refresh_every_fraction), or set "
                "miner.alternate=false to train both in every step")
        if self.alternate:
            retriever = period_phases(self, steps).count("retriever")
            log.warning(
                "ar2: miner.alternate=true updates the retriever in %d of the run's %d "
                "optimizer steps (the others train the ranker), so it learns from that share "
                "of the batches a baseline of the same length trains on; compare at equal "
                "retriever exposure with miner.alternate=false (both in every step) or a "
                "proportionally longer run", retriever, steps)

    # -- the step's objective ---------------------------------------------------------------
    def candidates_of(self, ctx: ScoreContext) -> tuple[Tensor, Tensor]:
        """(B, 1+k) columns of each query's positive and own explicit negatives, and (B, 1+k)
        bool: usable (the positive always; a negative unless masked or not a real text)."""
        b, k = ctx.batch_size, ctx.num_negatives
        rows = torch.arange(b, device=ctx.mask.device)
        cols = torch.cat([ctx.labels[:, None],
                          b + rows[:, None] * k + torch.arange(k, device=rows.device)[None, :]],
                         dim=1)
        real = torch.tensor([t != "" for t in ctx.doc_texts], dtype=torch.bool,
                            device=rows.device)
        valid = ~ctx.mask[rows[:, None], cols] & real[cols]
        valid[:, 0] = True
        assert explicit_negative_columns(ctx)[rows[:, None], cols[:, 1:]].all()
        return cols, valid

    def ranker_logits(self, ctx: ScoreContext, cols: Tensor, valid: Tensor) -> Tensor:
        """(B, 1+k) ranker logits of the usable candidates (-inf elsewhere)."""
        assert self.ranker is not None
        qi, ci = valid.nonzero(as_tuple=True)
        scores = self.ranker([ctx.queries[i] for i in qi.tolist()],
                             [ctx.doc_texts[j] for j in cols[qi, ci].tolist()])
        out = torch.full(valid.shape, float("-inf"), device=scores.device)
        out[qi.to(out.device), ci.to(out.device)] = scores
        self._ar2["pairs_ranked"] += len(qi)
        return out

    def retriever_terms(self, ctx: ScoreContext, r: Tensor, cols: Tensor, valid: Tensor
                        ) -> tuple[Tensor, Tensor]:
        """The KL term ``KL(p_φ || p_θ)`` and AR2's adversarial term, each averaged over the
        queries with at least two usable candidates (gradient into the retriever only)."""
        rows = torch.arange(ctx.batch_size, device=cols.device)
        s = ctx.scores()[rows[:, None], cols] / ctx.temperature
        valid = valid.to(s.device)
        r = r.detach().to(s.device)
        neg_inf = torch.finfo(s.dtype).min
        log_ps = torch.log_softmax(s.masked_fill(~valid, neg_inf), dim=1)
        log_pt = torch.log_softmax((r / float(self.ranker_knobs["temperature"]))
                                   .masked_fill(~valid, neg_inf), dim=1)
        ok = valid.sum(1) >= 2
        zero = torch.zeros_like(s)
        kl = torch.where(valid, log_pt.exp() * (log_pt - log_ps), zero).sum(1)
        reward = F.logsigmoid((r[:, :1] - r).masked_fill(~valid, 0.0))
        adv = torch.where(valid, reward * log_ps, zero).sum(1)
        n = ok.sum().clamp(min=1)
        self._ar2["candidates_distilled"] += int((valid & ok[:, None]).sum())
        return (kl * ok).sum() / n, (adv * ok).sum() / n

    def joint_loss(self, ctx: ScoreContext, loss: Tensor) -> Tensor:
        """The step's objective: the ranker's cross-entropy (ranker steps), the retriever's
        loss plus the KL and adversarial terms (retriever steps), or both (joint)."""
        if self.ranker is None or ctx.num_negatives == 0:
            return loss
        phase = self.phase(ctx.step)
        cols, valid = self.candidates_of(ctx)
        train_ranker = phase != "retriever"
        dropout = True if self._view is None else self._view.dropout
        self.ranker.train(train_ranker and dropout)
        with torch.set_grad_enabled(train_ranker):
            r = self.ranker_logits(ctx, cols, valid)
        target = torch.zeros(len(r), dtype=torch.long, device=r.device)
        ce = F.cross_entropy(r.masked_fill(~valid.to(r.device), torch.finfo(r.dtype).min),
                             target)
        ctx.logs["ar2_ranker_ce"] = float(ce.detach())
        ctx.logs["ar2_ranker_top1"] = float((r.detach().argmax(1) == 0).float().mean())
        ctx.logs["ar2_phase"] = {"retriever": 0.0, "ranker": 1.0, "joint": 2.0}[phase]
        self._count(phase, ctx.step)
        if phase == "ranker":
            return ce
        kl, adv = self.retriever_terms(ctx, r, cols, valid)
        ctx.logs["ar2_kl"] = float(kl.detach())
        out = loss + self.kl_weight * kl + self.adv_weight * adv
        return out + ce if phase == "joint" else out

    def _count(self, phase: str, step: int) -> None:
        if step == self._last_step:  # another micro-batch of the same optimizer step
            return
        self._last_step = step
        if phase in ("ranker", "joint"):
            self._ar2["ranker_steps"] += 1
        if phase in ("retriever", "joint"):
            self._ar2["retriever_steps"] += 1

    # -- what it changed, what it holds -----------------------------------------------------
    def effect(self) -> dict[str, float]:
        """ANCE's figures plus ``ranker_steps``, ``retriever_steps``, ``pairs_ranked`` and
        ``candidates_distilled``."""
        return {**super().effect(), **{k: float(v) for k, v in self._ar2.items()}}


def period_phases(miner: AR2Miner, steps: int) -> list[str]:
    """The phase of every optimizer step of a run of ``steps`` steps (for tests and docs)."""
    return [miner.phase(s) for s in range(max(steps, 0))]

