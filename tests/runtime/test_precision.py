"""precision: auto is bf16 only where the device does bf16 natively; an explicit bfloat16 on a CPU without it
falls back to float32 with one warning line (emulated bf16 is 30-45x slower: benchmarks.run --only precision)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import study.runtime.machine
from study.runtime.machine import cpu_capability
from study.runtime.precision import resolve_precision
from study.trial.run import run_trial

from tests.trial.test_trial import tiny

CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("native, auto, explicit", [(False, "float32", "float32"), (True, "bfloat16", "bfloat16")])
def test_auto_and_bfloat16_follow_native_support(native, auto, explicit):
    assert resolve_precision("auto", CPU, native_bf16=native).used == auto
    chosen = resolve_precision("bfloat16", CPU, native_bf16=native)
    assert chosen.used == explicit and chosen.warning == (not native)
    assert resolve_precision("float32", CPU, native_bf16=True).used == "float32"
    if not native:
        assert "falls back to float32" in chosen.describe() and chosen.describe().startswith("warning:")


@pytest.mark.parametrize("native", [False, True])
def test_a_trial_runs_in_the_precision_it_says(tmp_path, monkeypatch, native):
    """The trial's networks really run in what it announces: a hook on a convolution sees its output dtype."""
    monkeypatch.setattr(study.runtime.machine, "native_cpu_bf16", lambda: native)
    seen, lines = set(), []
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda module, args, out: seen.add(out.dtype) if isinstance(module, torch.nn.Conv1d) else None)
    try:
        cfg = tiny(training={"steps": 3}, schedule={"kind": "scratch", "sigma": 0.0},
                   evaluation={"clips": 4, "noise_levels": [0.01]}, separation={"enabled": False})
        run_trial(cfg.model_copy(update={"precision": "bfloat16"}), tmp_path, log=lines.append)
    finally:
        hook.remove()
    assert seen == ({torch.bfloat16} if native else {torch.float32})
    announced = [line for line in lines if "precision" in line]
    assert len(announced) == 1
    assert announced[0].startswith("warning: precision 'bfloat16' falls back to float32") != native


def test_dry_run_on_kernels_without_bf16_says_float32():
    """A real AVX2 code path (ATEN_CPU_CAPABILITY caps torch's kernels the way an AVX2-only host has them)."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    out = subprocess.run([sys.executable, "-m", "study.sweep", "sweeps/separation_frontier.yaml", "--dry-run"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "precision float32 (auto: the CPU (AVX2) has no native bf16) on this machine" in out.stdout


def test_capability_is_what_torch_reports():
    """Read from /proc/cpuinfo without torch (so the dry run is fast), and the same as torch's own answer."""
    kernels = torch.backends.cpu.get_cpu_capability()
    native = kernels not in ("DEFAULT", "AVX2") and (torch.cpu._is_avx512_bf16_supported()
                                                     or torch.cpu._is_amx_tile_supported())
    assert cpu_capability() == kernels + ("+bf16" if native else "")
