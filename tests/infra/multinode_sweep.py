"""Run a tiny sweep on a genuine multi-node Ray cluster on this machine (driven by test_multinode.py).

Usage: python multinode_sweep.py SWEEP.yaml   -> prints "RESULT {json summary}".
A head node without GPUs and two worker nodes with one logical GPU each are separate raylet processes
(ray.cluster_utils.Cluster); the sweep's trials ask for 0.6 GPU, so at most one fits per worker node.
"""
import json
import sys

from ray.cluster_utils import Cluster

from study.sweep.cli import load_sweep
from study.sweep.driver import run_sweep


def main(path: str) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0,
                                                            "include_dashboard": False})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1, num_gpus=1)
        cluster.wait_for_nodes()
        sweep = load_sweep(path, [f"ray.address={cluster.address}"])
        summary = run_sweep(sweep, None, log=lambda line: print(line, file=sys.stderr))
        print("RESULT " + json.dumps({"finished": summary.finished, "failed": summary.failed,
                          "nodes": len(cluster.list_all_nodes()), "experiment_id": summary.experiment_id}))
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
