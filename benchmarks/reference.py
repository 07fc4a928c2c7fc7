"""The published implementation's training step, for timing beside ours in the same run.

Its code is never part of this repository: ``python -m benchmarks.run --reference DIR`` names a checkout the
user cloned (``git clone https://github.com/morris-frank/unsupervised-source-separation DIR``). Only its two
model modules are imported (its training script needs packages this project does not install). The step is
its own training step at its toy configuration (``train.py`` and ``thesis/train.py`` of that repository):
``loss = model.test(x)``, backward, ``clip_grad_value_(…, 30)`` and Adam, on the same batch × crop × 4 sources
as ours. Both FloWaveNet and WaveNet model the 4 sources in one grouped network, as ours do.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Callable

import torch

MODULES = {"flowavenet": "thesis/nn/models/flowavenet.py", "wavenet": "thesis/nn/models/wavenet.py"}


def published_train_step(reference: Path, name: str, batch: int, crop: int) -> Callable[[], None]:
    """A closure running one training step of the published ``name`` prior on random audio."""
    reference = Path(reference).resolve()
    if not (reference / MODULES[name]).is_file():
        raise SystemExit(f"--reference {reference}: no {MODULES[name]}; is this a checkout of "
                         "morris-frank/unsupervised-source-separation?")
    if str(reference) not in sys.path:
        sys.path.insert(0, str(reference))
    warnings.filterwarnings("ignore", category=FutureWarning)  # its torch.nn.utils.weight_norm
    if name == "flowavenet":
        from thesis.nn.models.flowavenet import Flowavenet
        model = Flowavenet(in_channel=1, n_block=4, n_flow=6, n_layer=10, block_per_split=2, width=32,
                           groups=4, name="toy")
    else:
        from thesis.nn.models.wavenet import WaveNet
        model = WaveNet(in_channels=4, name="")
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-8)
    generator = torch.Generator().manual_seed(0)

    def step() -> None:
        x = (torch.rand(batch, 4, crop, generator=generator) * 2 - 1) * 0.8  # fresh: its μ-law clamps in place
        loss = model.test(x)
        model.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_value_(model.parameters(), 30)
        optimizer.step()
        model.ℒ.log.clear()  # its loop drains the loss log every step

    return step
