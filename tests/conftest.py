"""Every test starts in float32: what ``precision: auto`` picks depends on the host's CPU (bf16 where it is
native), and tests that compare two ways of computing the same sums need the same rounding on every host.
Tests of bf16 ask for it explicitly; trials resolve their own configured precision."""
import pytest

from study.runtime.device import use_precision


@pytest.fixture(autouse=True)
def float32_unless_asked():
    use_precision("float32")
    yield
    use_precision("float32")
