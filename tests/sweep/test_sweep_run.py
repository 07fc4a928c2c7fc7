"""Real sweeps on local Ray, checked through the MLflow client: nesting, stage metrics, artifacts and failures.
Interruption and resume are tested in test_resume.py."""
import json

import pandas as pd
import torch
from mlflow.tracking import MlflowClient

from study.runtime.machine import cpu_capability
from study.runtime.precision import resolve_precision
from study.sweep.cli import load_sweep
from study.sweep.driver import run_sweep
from study.sweep.report.command import main as frontier_main
from study.sweep.tracking import PARENT_TAG

from .conftest import TINY_BASE, write_sweep


def runs_of(folder, experiment="tiny-study"):
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id]) if exp else []
    parents = [r for r in runs if r.data.tags.get("study.role") == "sweep"]
    children = [r for r in runs if PARENT_TAG in r.data.tags]
    return client, parents, children


def steps(client, run, metric):
    return [m.step for m in client.get_metric_history(run.info.run_id, metric)]


def unreadable_stems(folder):
    """A stems folder that passes the check before Ray starts (every file there) but fails when a trial reads it."""
    for split in ("train", "test"):
        track = folder / split / "t0"
        track.mkdir(parents=True)
        for source in ("drums", "bass", "other", "vocals"):
            (track / f"{source}.wav").write_bytes(b"RIFF not really audio")
    return folder


def test_sweep_tracks_stages_artifacts_and_failures(tmp_path, ray_session):
    broken = unreadable_stems(tmp_path / "bad-stems")
    path = write_sweep(tmp_path, space={"variant": {"grid": [
        {"schedule": {"sigma": 0.0}},
        {"schedule": {"sigma": 0.077}},
        {"data": {"kind": "stems", "root": str(broken)}},  # fails at run time: its audio cannot be read
    ]}})
    summary = run_sweep(load_sweep(path, []), path, log=lambda line: None)
    assert (summary.finished, summary.failed, summary.interrupted) == (2, 1, 0)

    client, parents, children = runs_of(tmp_path)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert {c.data.tags[PARENT_TAG] for c in children} == {parent.info.run_id} and len(children) == 3
    assert parent.data.tags["study.version.torch"].startswith("2.11")
    parent_files = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"sweep.yaml", "study_summary.csv", "frontier.png", "dilemma.png", "frontier.html",
            "hypervolume.png"} <= parent_files
    page = open(client.download_artifacts(parent.info.run_id, "frontier.html", str(tmp_path))).read()
    assert all(json.dumps(child.info.run_name)[1:-1] in page for child in children if child.info.status == "FINISHED")
    totals = client.get_run(parent.info.run_id).data.metrics
    assert totals["compute_train_steps_total"] == 20 + 10  # the shared clean stage trained once, then σ=0.077's
    assert [m.step for m in client.get_metric_history(parent.info.run_id, "hypervolume")] == sorted(
        {m.step for m in client.get_metric_history(parent.info.run_id, "hypervolume")})
    header = open(client.download_artifacts(parent.info.run_id, "study_summary.csv", str(tmp_path))).readline()
    assert header.startswith("auroc,si_sdr,run,stage,stage_sigma,pareto")  # objectives first
    assert (summary.stages, summary.reused) == (3, 1)  # the σ=0.077 trial reused the σ=0 trial's clean stage
    assert "2 trials finished, 1 failed; 1 of 3 stages reused" in summary.describe()

    by_status = {}
    for child in children:
        by_status.setdefault(child.info.status, []).append(child)
    assert len(by_status["FINISHED"]) == 2 and len(by_status["FAILED"]) == 1
    failed = by_status["FAILED"][0]
    assert "bad-stems/" in failed.data.tags["study.error"] and "unreadable audio" in failed.data.tags["study.error"]
    assert failed.info.run_name.startswith("wn σ*0 ft kind=stems root=bad-stems · ")  # short, no full path

    noisy = next(c for c in by_status["FINISHED"] if c.data.params["schedule.sigma"] == "0.077")
    assert noisy.info.run_name.startswith("wn σ*0.077 ft")
    assert steps(client, noisy, "auroc") == [0, 1] and steps(client, noisy, "auroc_at_0.01") == [0, 1]
    assert steps(client, noisy, "si_sdr") == [1]
    assert noisy.data.params["training.steps"] == "20"
    # what the trial ran in on this host, so runs from different hosts can be told apart
    assert noisy.data.tags["study.precision"] == resolve_precision("auto", torch.device("cpu")).used
    assert noisy.data.tags["study.cpu_capability"] == cpu_capability()
    files = {a.path for a in client.list_artifacts(noisy.info.run_id)}
    assert {"metrics.json", "config.yaml", "stage0", "stage1", "audio"} <= files
    stage1 = {a.path for a in client.list_artifacts(noisy.info.run_id, "stage1")}
    assert {"stage1/cross_likelihood.png", "stage1/noise_curve.png", "stage1/cross_likelihood.csv"} <= stage1
    for folder in ("audio/crops", "audio/excerpt"):
        assert f"{folder}/mixture.wav" in {a.path for a in client.list_artifacts(noisy.info.run_id, folder)}

    # the frontier drawn again for other objectives goes beside the sweep's record, never over it, and
    # counts the clean stage both finished trials share once
    record = open(client.download_artifacts(parent.info.run_id, "study_summary.csv", str(tmp_path / "a"))).read()
    assert frontier_main(["--experiment", "tiny-study", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                          "--objectives", "auroc:max", "logp_drop@0.01:max"]) == 0
    assert open(client.download_artifacts(parent.info.run_id, "study_summary.csv", str(tmp_path / "b"))).read() == record
    view = "frontier_auroc-max_logp_drop_at_0.01-max"
    assert {f"{view}/study_summary.csv", f"{view}/frontier.png"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id, view)}
    rows = pd.read_csv(client.download_artifacts(parent.info.run_id, f"{view}/study_summary.csv", str(tmp_path / "c")))
    clean = rows[rows["stage_sigma"] == 0.0]
    assert len(clean) == 1 and clean["shared_by"].item() == 2, clean.T.to_string()



def test_resources_no_node_can_hold_fail_fast(tmp_path, ray_session, capsys):
    """resources.cpu: 64 on a 2-CPU Ray: exit 2 at once (Tune would wait forever), nothing created."""
    from study.sweep.cli import main

    path = write_sweep(tmp_path, resources={"cpu": 64})
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main([path]) == 2
    err = capsys.readouterr().err
    assert "resources: one trial asks for 64 CPU" in err and "the largest has 2 CPU" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_sweep_whose_every_trial_failed_ends_failed(tmp_path, ray_session, capsys):
    from study.sweep.cli import main

    broken = unreadable_stems(tmp_path / "bad-stems")
    path = write_sweep(tmp_path, base={**TINY_BASE, "data": {"kind": "stems", "root": str(broken)}},
                       space={"schedule.sigma": {"grid": [0.0]}})
    assert main([path]) == 1
    _, parents, children = runs_of(tmp_path)
    assert [c.info.status for c in children] == ["FAILED"]
    assert parents[0].info.status == "FAILED" and "every trial failed (1)" in parents[0].data.tags["study.error"]
