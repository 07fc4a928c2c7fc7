"""First use of the default sqlite tracking store by several processes at once (two sweeps started together
in an empty folder): MLflow creates and migrates the schema on first open, which races without a lock."""
import subprocess
import sys

from study.tracking import client_for

OPEN_AND_CREATE = ("import sys; from study.tracking import client_for, ensure_experiment; "
                   "ensure_experiment(client_for(sys.argv[1]), sys.argv[2])")


def test_concurrent_first_use_of_a_sqlite_store_is_safe(tmp_path):
    for attempt in range(2):  # without the lock, 10 of 12 processes failed in 3 rounds of 4
        uri = f"sqlite:///{tmp_path / f'mlflow{attempt}.db'}"
        processes = [subprocess.Popen([sys.executable, "-c", OPEN_AND_CREATE, uri, f"sweep{i}"],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(4)]
        outputs = [p.communicate(timeout=120)[0] for p in processes]
        assert [p.returncode for p in processes] == [0] * 4, "\n".join(o[-1500:] for o in outputs)
        names = {e.name for e in client_for(uri).search_experiments()}
        assert {f"sweep{i}" for i in range(4)} <= names
