"""`smear synthetic`: the paper's theory experiments, Figure 1, Figure 5 and Theorem 1.

Command:
    smear synthetic --config synthetic --workdir W [--force]

writes one artifact directory `W/synthetic/synthetic-<fingerprint>/` holding
- figure1_{ls,bc,fc}.{png,svg} and figure1.json: the two-class logistic loss of
  label 1 against the margin m = f_1 - f_0 (logits (-m/2, m/2)) under label
  smoothing (LS), backward correction (BC) and forward correction (FC) with the
  smoothing-form T_alpha, computed by calling the project's Keras loss objects;
- figure5_{ls,l2}.{png,svg}, figure5_table.{md,json}: logistic regression (a
  float64 Keras Dense(2) logit layer, full-batch L-BFGS) on a 2-D two-Gaussian
  problem with 5% of the negatives flipped to positive, with LS over a grid of
  alphas and with L2 over a grid of strengths, against the Bayes separator;
- theorem1.json: numerical checks of Theorem 1 for the LS regulariser Omega;
- summary.md, and `manifest.json` written last.

The Figure 5 fits minimise the mean of the project's per-example function
`label_smearing.modeling.losses.label_smoothing_cross_entropy` on float64 logits: the
Loss classes cast predictions to Keras' floatx (float32), whose rounding stops
L-BFGS at gradient norms near 1e-5, while in float64 every fit converges to a
gradient norm below 1e-8.

The package, one role per module:
    figure1.py   Figure 1: the loss curves under LS, BC and FC and their key points
    figure5.py   Figure 5: the data, the logistic-regression fits (L-BFGS) and their
                 geometry against the Bayes separator
    theorem1.py  Theorem 1: the regulariser Omega and its numerical checks
    figures.py   the PNG/SVG figures of Figure 1 and Figure 5
    markdown.py  figure5_table.md and summary.md
    progress.py  the `[synthetic] ...` progress lines
    stage.py     `run(argv)`, the command, and `_compute`, which writes the artifact
"""

from __future__ import annotations

from label_smearing.experiments.synthetic.figure1 import FIGURE1_METHODS, figure1_curves
from label_smearing.experiments.synthetic.figure5 import (
    disagreement_probability,
    fit_logistic_regression,
    make_gaussian_data,
    run_figure5,
    separator_geometry,
)
from label_smearing.experiments.synthetic.stage import run
from label_smearing.experiments.synthetic.theorem1 import run_theorem1, smoothing_regulariser

__all__ = [
    "FIGURE1_METHODS",
    "disagreement_probability",
    "figure1_curves",
    "fit_logistic_regression",
    "make_gaussian_data",
    "run",
    "run_figure5",
    "run_theorem1",
    "separator_geometry",
    "smoothing_regulariser",
]
