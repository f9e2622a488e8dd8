"""Aggregate evaluations into the paper's tables and figures.

    smear report --config quickstart --workdir W [--force]

Reads every complete evaluation (`smear evaluate`) and writes
`<workdir>/report/<config name>-<fp10>/` with

- `report.md`: per experimental setting (data and noise, architecture,
  training schedule) the tables of the paper: test accuracy at the alpha each
  method chooses on noisy-label validation accuracy (Table 7 layout; the
  validation protocol, `Setting.selection`) and how that choice compares with
  the clean-label and the test (oracle) choice, test accuracy per alpha
  (Table 2 layout), the train accuracy breakdown (Table 3), ECE (Table 4),
  distilled students (Table 5), tables of every teacher and student, and the
  paper's claims 1-6 checked one by one with a verdict each (holds / does not
  hold / inconclusive; label_smearing/stages/report/claims.py), with claim 8 (Wei et al.
  2022: NLS vs LS) where LS has alphas < 0. Negative smoothing sits on the same
  alpha axis as LS in the tables and Figure 2, alpha 0 being the CE baseline,
  and its alpha is chosen apart ("NLS"). A cell with a diverged training run
  reads "diverged" with the step, never a silent average;
- `tables/*.csv`: the same tables, cell for cell, plus `summary.csv` with the
  unformatted mean, standard deviation and count of every metric (and the
  seeds that diverged, as seed@step);
- `figures/`: test accuracy against alpha (Figure 2), student accuracy against
  the teacher's alpha (Figure 6), the learning curves of CE and each method at
  its smallest alpha and, per model, the reliability diagram, logit-gap
  densities and pre-logit projection of one representative seed (the smallest);
- `tensorboard/`: a TensorBoard HParams summary with one run per evaluation.

Numbers over seeds are mean ± sample standard deviation (ddof = 1). A cell with
one seed shows "± —" (no standard deviation; the figures draw it with zero
spread). Accuracies are in percent with 2 decimals, ECE and NLL with 3.

The modules, each importing only those before it: `evaluations` (loading the
artifacts, statistics over seeds), `selection` (settings, the choice of alpha,
method names), `claims` (the claim verdicts), `tables`, `figures` (and the
HParams summary), `render` (report.md and the CSV files) and `stage` (the
stage, its plan entry point `compute_planned` and the `smear report` command).
"""

from label_smearing.stages.report.evaluations import Evaluation, Stat, find_evaluations, load_evaluation
from label_smearing.stages.report.render import render_report
from label_smearing.stages.report.selection import Setting, method_column, negative_column
from label_smearing.stages.report.stage import compute_planned, report_stage, run
from label_smearing.stages.report.tables import Table

__all__ = [
    "Evaluation",
    "Setting",
    "Stat",
    "Table",
    "compute_planned",
    "find_evaluations",
    "load_evaluation",
    "method_column",
    "negative_column",
    "render_report",
    "report_stage",
    "run",
]
