"""The sweep layer: a YAML file in, Ray Tune trials out, every trial tracked in MLflow, the frontier at the end.

    python -m study.sweep SWEEP.yaml [--dry-run] …        (study/sweep/cli.py)

One trial from its YAML to its MLflow run: ``cli`` (parse and validate, exit 2 on a mistake) → ``config``
(the sweep's schema and the trial configs it expands to) → ``driver`` (Ray, the parent run, Tune, the
summary) → ``trainable`` (one trial in a Ray worker: its MLflow child run around :func:`study.trial.run.run_trial`)
→ ``tracking`` (what goes to MLflow, and how). Beside them: ``plan`` (the dry run: trials and training
cost), ``labels`` (a trial's short name), ``tuning`` (Tune's search, scheduler and console),
``signals`` (Ctrl-C and SIGTERM), ``leases`` (the stage-lease actor) and ``frontier`` (the Pareto frontier).

The sweep layer imports the trial layer (``study.trial`` and below), never the other way round.
"""
