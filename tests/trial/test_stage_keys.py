"""Stage keys are the stage store's addresses: a store written by an earlier version must be reused by this
one. These keys were computed before the sweep layer became a package (issue 24); if one changes, every
stored stage of that kind is retrained, so a change here must be deliberate and said in the README."""
import pytest

from study.config.schema import TrialConfig
from study.trial.stages import background_key, evaluation_key, plan_stages, separation_key, separation_levels, stage_keys

PINNED = {
    "wavenet from_clean": ({"prior": {"name": "wavenet", "preset": "tiny"},
                            "schedule": {"kind": "from_clean", "sigma": 0.077}},
                           ["0cf650757f329ff5", "5c96ecccf9c63f5d"]),
    "flow chained": ({"prior": {"name": "flowavenet", "preset": "tiny"}, "schedule": {"kind": "chained", "sigma": 0.077}},
                     ["c14629ccd05a37c9", "938fb381ab35d52c", "eb8156fc1cb60f38", "f2a717652dc1f6b3",
                      "9c14dc8a9774850e", "96768086baccad29"]),
    "score scratch": ({"prior": {"name": "scorenet", "preset": "tiny"},
                       "schedule": {"kind": "scratch", "sigma": 1.0, "ladder": [1.0, 0.1, 0.01]}},
                      ["fd2f367ce099d12f"]),
}


@pytest.mark.parametrize("name", PINNED)
def test_stage_keys_are_pinned(name):
    tree, keys = PINNED[name]
    cfg = TrialConfig.model_validate(tree)
    assert stage_keys(cfg, plan_stages(cfg)) == keys


def test_evaluation_separation_and_background_keys_are_pinned():
    cfg = TrialConfig.model_validate(PINNED["wavenet from_clean"][0])
    stages = plan_stages(cfg)
    keys = stage_keys(cfg, stages)
    assert evaluation_key(cfg, stages[1], keys[1]) == "8a3febf9697b45e1"
    assert separation_key(cfg, separation_levels(stages, cfg.separation), keys) == "129b271c1ed67143"
    background = TrialConfig.model_validate({"prior": {"name": "wavenet", "preset": "tiny"},
                                             "evaluation": {"background": True}})
    assert background_key(background) == "afed3bca0228ec10"
