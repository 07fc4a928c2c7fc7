"""A sweep on a Ray cluster of several nodes on this machine that loses a worker node mid-stage (driven by
test_node_loss.py).

Usage: python node_loss_sweep.py SWEEP.yaml STORE   -> prints "KILLED {json}" when it kills, "RESULT {json}".
The head holds no CPU, so trials run on three worker nodes of one CPU each (separate raylet processes,
ray.cluster_utils.Cluster, as the multi-node test). Once a trial has stored a checkpoint of a stage it has not
finished, the node running it dies as a machine does: its raylet and every process under it get SIGKILL at
once, then the cluster forgets it.
"""
import json
import os
import signal
import sys
import threading
import time

from ray.cluster_utils import Cluster

from study.store.stage_store import StageStore
from study.sweep.cli import load_sweep
from study.sweep.driver import run_sweep

from tests.sweep.test_resume import stage_folders


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:  # "pid (name) state ppid ...": the name may hold spaces
        return int(f.read().rpartition(")")[2].split()[1])


def ancestors(pid: int) -> set[int]:
    found = set()
    while pid > 1:
        pid = parent_of(pid)
        found.add(pid)
    return found


def tree(root: int) -> list[int]:
    """``root`` and every process under it."""
    everyone = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    found = []
    for pid in everyone:
        try:
            if pid == root or root in ancestors(pid):
                found.append(pid)
        except (FileNotFoundError, ProcessLookupError):  # ended meanwhile
            pass
    return found


def node_running(cluster: Cluster, pid: int):
    """The worker node whose raylet started process ``pid``."""
    above = ancestors(pid)
    for node in cluster.worker_nodes:
        if any(info.process.pid in above for info in node.all_processes.get("raylet", [])):
            return node
    raise LookupError(f"no worker node runs process {pid}")


def kill_node_mid_stage(cluster: Cluster, store: StageStore, done: list) -> None:
    deadline = time.time() + 600  # only an upper bound: a loaded machine may take minutes to start a worker
    while time.time() < deadline:
        time.sleep(0.1)
        trained = stage_folders(store)
        for key, attempts in trained.items():
            if store.is_complete(key) or not store.exists(f"{key}/train.pt"):
                continue
            pid = store.read_json(f"{key}/attempts/{attempts[0]}")["pid"]
            node = node_running(cluster, pid)
            processes = [p for info in node.all_processes["raylet"] for p in tree(info.process.pid)]
            sealed = sorted(k for k in trained if store.is_complete(k))
            for process in processes:  # all at once: a machine that dies does not stop its processes in order
                try:
                    os.kill(process, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            cluster.remove_node(node, allow_graceful=False)
            done.append({"stage": key, "node": node.node_id, "sealed_before": sealed,
                         "attempts_before": {k: len(v) for k, v in trained.items()}})
            print("KILLED " + json.dumps(done[-1]), flush=True)
            return


def main(path: str, store_path: str) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        for _ in range(3):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        killed: list = []
        killer = threading.Thread(target=kill_node_mid_stage, args=(cluster, StageStore(store_path), killed))
        killer.start()
        sweep = load_sweep(path, [f"ray.address={cluster.address}"])
        summary = run_sweep(sweep, None, log=lambda line: print(line, file=sys.stderr, flush=True))
        killer.join()
        print("RESULT " + json.dumps({"finished": summary.finished, "failed": summary.failed, "killed": killed,
                                      "nodes_left": len([n for n in cluster.list_all_nodes()]),
                                      "experiment_id": summary.experiment_id}), flush=True)
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:])
