"""Each prior family's settings as one dataclass: the one home of every default (nanoGPT's ``GPTConfig``).

A prior is built from its settings (``WaveNet(WaveNetSettings(width=32))``), saves them as its checkpoint's
``hparams`` and validation reads them here, without importing torch.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

LOWEST_SIGMA = 0.01  # the lowest noise level a score prior learns and a clean prior is used at


@dataclass(frozen=True)
class PriorSettings:
    """What every family shares. ``num_sources``: K priors trained side by side with grouped convolutions;
    ``cond_features``: noise-level features per source of a σ-conditional prior."""

    trained_by: ClassVar[str] = "likelihood"  # or "denoising" (score priors): what the training objective is
    num_sources: int = 1
    cond_features: int = 16

    @classmethod
    def of(cls, **hparams) -> "PriorSettings":
        """Settings from keyword values (a checkpoint's or a config's ``hparams``), naming a wrong key."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(hparams) - names)
        if unknown:
            raise TypeError(f"{cls.__name__} takes no setting {unknown[0]!r}; it takes {sorted(names)}")
        return cls(**hparams)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class WaveNetSettings(PriorSettings):
    """Causal WaveNet (:mod:`models.wavenet`). ``stacks × layers``: dilation cycles and layers per cycle
    (paper 3 × 10); ``width``: residual/skip channels per source; ``head``: ``logistic`` mixture of
    ``mixtures`` components, or the paper's ``mulaw`` categorical over ``quantization_channels`` bins;
    ``support``: ``real`` or ``unit`` (the logistic head truncated to [-1, 1]); ``min_log_scale``: floor of
    each logistic's log-scale, which bounds the density."""

    stacks: int = 3
    layers: int = 10
    width: int = 64
    kernel_size: int = 2
    head: str = "logistic"
    mixtures: int = 10
    support: str = "real"
    min_log_scale: float = -9.0
    quantization_channels: int = 256
    noise_conditional: bool = False


@dataclass(frozen=True)
class WaveNetNCSettings(WaveNetSettings):
    noise_conditional: bool = True


@dataclass(frozen=True)
class FloWaveNetSettings(PriorSettings):
    """FloWaveNet (:mod:`models.flowavenet`): ``blocks`` squeeze blocks of ``flows`` flows (paper toy 4 × 6),
    each coupling a non-causal WaveNet of ``layers``, ``width``, ``kernel_size``; half the channels split off
    after every ``split_every`` blocks."""

    blocks: int = 4
    flows: int = 6
    layers: int = 10
    width: int = 32
    kernel_size: int = 3
    split_every: int = 2
    noise_conditional: bool = False


@dataclass(frozen=True)
class FloWaveNetNCSettings(FloWaveNetSettings):
    noise_conditional: bool = True


@dataclass(frozen=True)
class ScoreNetSettings(PriorSettings):
    """Score network (:mod:`models.scorenet`): a DiffWave stack (``stacks``, ``layers``, ``width``, odd
    ``kernel_size``) covering σ in [``sigma_min``, ``sigma_max``]; ``sigma_data``: the data's standard
    deviation in the preconditioning; ``bound_nodes``: quadrature nodes of its likelihood bound."""

    trained_by: ClassVar[str] = "denoising"
    stacks: int = 1
    layers: int = 10
    width: int = 32
    kernel_size: int = 3
    sigma_min: float = LOWEST_SIGMA
    sigma_max: float = 1.0
    sigma_data: float = 1.0
    bound_nodes: int = 12


SETTINGS: dict[str, type[PriorSettings]] = {
    "flowavenet": FloWaveNetSettings, "wavenet": WaveNetSettings, "flowavenet_nc": FloWaveNetNCSettings,
    "wavenet_nc": WaveNetNCSettings, "scorenet": ScoreNetSettings}
