"""The catalog reads the priors' settings from their source; here they are checked against the classes."""
import inspect

import pytest

from models import PRIORS
from models.catalog import PRIOR_NAMES, prior_parameters, trained_by


def imported_parameters(cls) -> dict[str, object]:
    """What the constructors accept, by introspecting the imported classes along ``**kwargs``."""
    found = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        own = inspect.signature(klass.__init__).parameters
        for key, parameter in own.items():
            if key != "self" and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
                found.setdefault(key, parameter.default)
        if not any(p.kind == p.VAR_KEYWORD for p in own.values()):
            break
    return found


@pytest.mark.parametrize("name", PRIOR_NAMES)
def test_the_catalog_reads_what_the_classes_accept(name):
    assert set(PRIORS) == set(PRIOR_NAMES)
    read = {key: parameter.default for key, parameter in prior_parameters(name).items()}
    assert read == imported_parameters(PRIORS[name])
    assert trained_by(name) == PRIORS[name].trained_by
