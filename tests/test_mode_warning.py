"""hnm sets every model's train/eval mode itself at each step (frozen guides, rankers and
document encoders in eval, see tests/effects/test_modes.py), so Lightning's warning about
modules "in eval mode at the start of training" only alarms the user: it is not printed."""

from __future__ import annotations

import warnings
from pathlib import Path

from hnm.cli import main


def test_a_frozen_document_encoder_starts_no_eval_mode_warning(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        main(["train", "experiment=smoke", "logger=none", "+miner=adore",
              "miner.doc_encoder='${encoder}'",
              "trainer.max_steps=1", f"hydra.run.dir={tmp_path / 'run'}"])
    assert (tmp_path / "run" / "metrics.json").is_file()
    assert not [w for w in caught if "in eval mode" in str(w.message)], \
        [str(w.message) for w in caught]
