"""The frontier's rows read from MLflow incrementally: a refresh reads only the runs that reported since the
last one (counted), yet always gives the same table as reading every run afresh."""
import time

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from study.sweep.report.frontier import refresh_frontier
from study.sweep.report.rows import StageRows, stage_rows
from study.sweep.tracking import PARENT_TAG

OBJECTIVES = {"auroc": "max", "logp_drop@0.01": "max"}


def log_stage(client, run_id: str, step: int, auroc: float) -> None:
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric("stage", step, now, step), Metric("auroc", auroc, now, step),
                                      Metric("logp_drop_at_0.01", -auroc, now, step)])


def a_sweep(tmp_path, trials: int):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("rows")
    parent = client.create_run(experiment, run_name="sweep").info.run_id
    children = []
    for i in range(trials):
        run = client.create_run(experiment, run_name=f"trial {i}", tags={PARENT_TAG: parent})
        client.log_param(run.info.run_id, "schedule.kind", "scratch")
        log_stage(client, run.info.run_id, 0, 0.5 + i / 100)
        children.append(run.info.run_id)
    return client, experiment, parent, children


def same_table(reader: StageRows, client, experiment, parent) -> None:
    incremental = reader.read()
    fresh = stage_rows(client, experiment, parent, list(OBJECTIVES))
    assert incremental.drop(columns="logged_at").equals(fresh.drop(columns="logged_at"))


def test_a_refresh_reads_only_the_runs_that_reported_since_the_last(tmp_path):
    client, experiment, parent, children = a_sweep(tmp_path, 6)
    reader = StageRows(client, experiment, parent, list(OBJECTIVES))
    assert len(reader.read()) == 6 and reader.runs_read == 6 and reader.changed

    assert len(reader.read()) == 6 and reader.runs_read == 6 and not reader.changed  # nothing new: nothing read
    assert not refresh_frontier(reader, OBJECTIVES)  # and nothing drawn again

    log_stage(client, children[2], 1, 0.9)  # one running trial reports its second stage
    client.set_terminated(children[4])  # another ends
    same_table(reader, client, experiment, parent)
    assert reader.runs_read == 6 + 2 and reader.changed

    new = client.create_run(experiment, run_name="late", tags={PARENT_TAG: parent}).info.run_id
    log_stage(client, new, 0, 0.7)
    same_table(reader, client, experiment, parent)
    assert reader.runs_read == 6 + 2 + 1

    # closing: every run listed once more, none of the unchanged ones read again, a deleted one gone
    client.delete_run(children[0])
    rows = reader.read(everything=True)
    assert reader.runs_read == 9 and children[0] not in set(rows["run_id"])
    assert len(rows) == 6 + 1  # trial 2 has two stages
    assert refresh_frontier(StageRows(client, experiment, parent, list(OBJECTIVES)), OBJECTIVES)


def test_a_run_ended_long_before_the_last_listing_is_not_listed_again(tmp_path):
    client, experiment, parent, children = a_sweep(tmp_path, 3)
    for run_id in children:
        client.set_terminated(run_id, end_time=int(time.time() * 1000) - 120_000)  # ended 2 minutes ago
    reader = StageRows(client, experiment, parent, list(OBJECTIVES))
    reader.read()
    listed = []
    reader.client = Listing(client, listed)
    reader.read()
    assert listed == [0, 0]  # the running ones and the recently ended ones: none


class Listing:
    """The client, counting the runs each search returns."""

    def __init__(self, client, counts: list):
        self.client, self.counts = client, counts

    def search_runs(self, *args, **kwargs):
        runs = self.client.search_runs(*args, **kwargs)
        self.counts.append(len(runs))
        return runs

    def __getattr__(self, name):
        return getattr(self.client, name)
