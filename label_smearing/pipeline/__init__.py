"""Orchestration: the plan (`plan.py`), its executors (in process, `--jobs N` workers, Kubeflow
Pipelines), publishing, and `smear run`. The top layer below the CLI: it reads the stage
registry (`label_smearing.core.registry`) and calls the stages through it."""
