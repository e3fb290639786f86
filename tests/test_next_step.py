"""The one line that ends ``hnm train``: what it trained and the command to run next."""

from __future__ import annotations

from hnm.report import next_step

M = {"zero_shot/d/ndcg@10": 0.6, "test/d/ndcg@10": 0.65}


def test_baseline_points_to_a_strategy() -> None:
    line = next_step("baseline", ["data.max_train_pairs=64"], M, "d", "test", 64, 4)
    assert line.startswith("trained in-batch negatives (the baseline) on d (64 pairs, 4 steps): "
                           "test nDCG@10 0.6000 -> 0.6500 (+0.0500).")
    assert "hnm train experiment=recommended" in line and "\n" not in line


def test_strategy_points_to_seeds_and_the_matching_baseline() -> None:
    line = next_step("sampler=ngame", ["+sampler=ngame", "sampler.refresh_every=2",
                                       "data.max_train_pairs=64", "seed=7",
                                       "hydra.run.dir=x y"], M, "d", "test", 64, 4)
    assert ("`hnm train -m +sampler=ngame sampler.refresh_every=2 data.max_train_pairs=64 "
            "seed=1,2,3`") in line
    assert "`hnm train -m data.max_train_pairs=64 seed=1,2,3`" in line
    assert "hydra" not in line and "seed=7" not in line


def test_an_experiment_preset_counts_as_a_strategy() -> None:
    line = next_step("sampler=tas_balanced", ["experiment=recommended"], M, "d", "dev", 1, 1)
    assert "`hnm train -m experiment=recommended seed=1,2,3`" in line
    assert "`hnm train -m seed=1,2,3`" in line


def test_a_plain_preset_stays_on_both_sides() -> None:
    line = next_step("sampler=ngame", ["experiment=smoke", "+sampler=ngame"], M, "d", "test",
                     1, 1)
    assert "`hnm train -m experiment=smoke +sampler=ngame seed=1,2,3`" in line
    assert "`hnm train -m experiment=smoke seed=1,2,3`" in line


def test_a_strategy_run_also_names_the_recommended_recipe_once() -> None:
    line = next_step("sampler=ngame", ["+sampler=ngame"], M, "d", "test", 1, 1)
    assert line.endswith("the recipe chosen on stdlib_code's dev split: "
                         "`hnm train experiment=recommended`.")
    line = next_step("sampler=tas_balanced", ["experiment=recommended"], M, "d", "test", 1, 1)
    assert "the recipe chosen" not in line  # it is the recipe: no tip pointing to itself


def test_a_preset_run_names_the_preset_it_trained() -> None:
    line = next_step("sampler=tas_balanced", ["experiment=recommended"], M, "d", "test", 1, 1)
    assert line.startswith("trained experiment=recommended (sampler=tas_balanced) on d ")
    line = next_step("sampler=ngame", ["experiment=smoke", "+sampler=ngame"], M, "d", "test",
                     1, 1)
    assert line.startswith("trained sampler=ngame on d ")


def test_a_preset_with_a_strategy_knob_still_names_the_preset() -> None:
    line = next_step("sampler=tas_balanced", ["experiment=recommended", "loss.temperature=0.05"],
                     M, "d", "test", 1, 1)
    assert line.startswith("trained experiment=recommended (sampler=tas_balanced) on d ")
