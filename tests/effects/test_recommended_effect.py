"""Effect test of ``experiment=recommended`` through the real ``trainer.fit``: the preset as
shipped (only the encoder, the batch size and the cluster count scaled to the planted data)
trains two epochs of topic-aware batches with in-batch negatives only, in bf16-mixed steps
exactly where the hardware has bf16."""

from __future__ import annotations

import pytest
import torch

from tests.effects.harness import BASE, record_fit, topic_of

# the harness's base without its own preset (experiment=smoke) and epoch count
RECIPE_BASE = [o for o in BASE if o not in ("experiment=smoke", "trainer.max_epochs=1")]
# 64 planted pairs in 8 topics: batch 8 and 8 clusters, so a topic fills whole batches
RECIPE = ["experiment=recommended", "encoder=tiny", "data.max_seq_length=32", "batch_size=8",
          "sampler.n_clusters=8"]


def _state(run):
    clusters = run.dm.batch_sampler.clusters
    return (None if clusters is None else [c.copy() for c in clusters],
            torch.is_autocast_enabled("cpu"))


@pytest.mark.parametrize("hardware", ["1", "0"])
def test_recommended_trains_two_epochs_of_topic_batches_without_mined_negatives(
        tmp_path, monkeypatch, hardware) -> None:
    monkeypatch.setenv("HNM_BF16_HARDWARE", hardware)
    rec = record_fit(tmp_path, RECIPE, probe=_state, base=RECIPE_BASE)
    n = len(rec.run.pairs)
    assert {s.epoch for s in rec.steps} == {0, 1}, "two epochs"
    for e in (0, 1):
        steps = rec.epoch(e)
        assert sorted(i for s in steps for i in s.idx) == list(range(n)), f"epoch {e}"
        one_cluster = 0
        for s in steps:
            clusters, _ = s.probe
            assert clusters is not None, f"epoch {e}: trained before any clustering"
            label = {int(i): c for c, members in enumerate(clusters) for i in members}
            one_cluster += len({label[i] for i in s.idx}) == 1
            # in-batch negatives only: no mined negative, no teacher scores
            assert s.num_negatives == 0 and s.teacher is None
            assert len(s.doc_ids) == s.batch_size
        # every batch from one cluster but the few that hold the clusters' tails
        tails = sum(len(c) % 8 for c in steps[0].probe[0])
        assert one_cluster >= len(steps) - -(-tails // 8), (e, one_cluster)
        assert one_cluster >= len(steps) // 2
    # the clusters are topics: most in-batch pairs share one (a random batch: 7/63 = 0.11)
    topics = [[topic_of(q) for q in s.qids] for s in rec.epoch(0)]
    same = sum(t[i] == t[j] for t in topics for i in range(len(t)) for j in range(i + 1, len(t)))
    total = sum(len(t) * (len(t) - 1) // 2 for t in topics)
    assert same / total > 0.5
    # bf16-mixed steps exactly where the hardware has bf16 (trainer.precision=auto)
    bf16 = hardware == "1"
    assert rec.run.trainer.precision == ("bf16-mixed" if bf16 else "32-true")
    assert all(s.probe[1] == bf16 for s in rec.steps)
