"""Every default lives in the families' settings dataclasses; the classes are built from them alone."""
import pytest

from models import PRIORS, build_prior, load_prior, save_prior
from models.catalog import PRIOR_NAMES, prior_defaults, trained_by
from models.settings import SETTINGS


@pytest.mark.parametrize("name", PRIOR_NAMES)
def test_a_prior_is_its_settings_and_its_checkpoint_rebuilds_it(name, tmp_path):
    assert set(PRIORS) == set(PRIOR_NAMES) == set(SETTINGS)
    prior = build_prior(name, "tiny", num_sources=2)
    assert prior.hparams == {**prior_defaults(name), **prior.hparams}  # every setting saved, none invented
    assert prior.hparams["num_sources"] == 2 and prior.trained_by == trained_by(name)
    save_prior(prior, tmp_path / "p.pt")
    again = load_prior(tmp_path / "p.pt")
    assert again.settings == prior.settings and type(again) is type(prior)


def test_a_setting_the_family_lacks_is_named():
    with pytest.raises(TypeError, match="'heads'"):
        build_prior("wavenet", heads="mulaw")


def test_a_checkpoint_saved_before_settings_were_dataclasses_still_loads():
    # earlier checkpoints saved only the family's own keywords (no noise_conditional, no cond_features)
    prior = PRIORS["scorenet"](SETTINGS["scorenet"].of(num_sources=1, stacks=1, layers=3, width=8, kernel_size=3,
                                                       sigma_min=0.01, sigma_max=1.0, sigma_data=1.0, bound_nodes=12))
    assert prior.noise_conditional and prior.sigma_min == 0.01
