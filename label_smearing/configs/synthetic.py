"""The theory experiments: Figure 1, Figure 5 and Theorem 1 of Lukasik et al. (2020).

Command:
    smear synthetic --config synthetic --workdir workdir

Runtime here (2 shared CPU cores): about 8 s wall, 3 s of it computing (the rest is
importing TensorFlow). `synthetic:smoke` (fewer points, shorter grids)
computes in about 2 s.

What it produces (results/synthetic/ holds a copy of a full run):
- Figure 1: the two-class logistic loss of label 1 against the margin
  m = f_1 - f_0 (logits (-m/2, m/2)) for LS, BC and FC with the smoothing-form
  T_alpha, alpha in {0, 0.1, 0.2, 0.3}: LS gets a finite positive minimum, BC goes
  negative for large positive m, FC saturates for large negative m.
- Figure 5 (all values ours; the paper's were not recoverable): classes N(+mean,
  scale^2 I) (positives, label 1) and N(-mean, scale^2 I) (negatives, label 0) with
  mean = (1, 1), scale = 0.6, 1000 points per class; 5% of the negatives (50
  points, seed 0) flipped to positive. The Bayes separator is mean . x = 0. Plain
  logistic regression on the noisy labels moves the separator about 0.24 towards
  the negatives; LS with growing alpha and L2 with growing strength both move it
  back monotonically (offset -0.24 -> -0.11 at alpha = 0.5, -> -0.07 at L2 0.3;
  disagreement with the Bayes separator 0.0112 -> 0.0046 and -> 0.0028).
- Theorem 1: Omega(W) = E_x[L logsumexp(W x) - sum_y (W x)_y] has zero gradient at
  W = 0, Omega(W) >= L log L over random W, and gradient descent drives W to the
  minimisers (all rows equal; W = 0 among them, reached from a centred start).

The separator's distance to the Bayes separator is the disagreement probability
P_x[sign(w . x + b) != sign(mean . x)] under the clean mixture, computed exactly
(bivariate normal CDF); the table also gives the angle between w and the mean
difference and the offset, the signed position where the separator crosses the line
through the two means (negative: towards the negatives).
"""

import ml_collections

from label_smearing.configs import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    smoke = base.smoke_only(arg)
    c = ml_collections.ConfigDict()
    c.name = "synthetic"

    c.figure1 = ml_collections.ConfigDict()
    c.figure1.alphas = (0.0, 0.1, 0.2, 0.3)  # ours: the paper's curves are unlabelled here
    c.figure1.margin_min = -6.0
    c.figure1.margin_max = 6.0
    c.figure1.num_points = 61 if smoke else 241

    c.figure5 = ml_collections.ConfigDict()
    c.figure5.mean = (1.0, 1.0)  # ours: positives centred at +mean, negatives at -mean
    c.figure5.scale = 0.6  # ours: isotropic standard deviation of each class
    c.figure5.num_per_class = 300 if smoke else 1000  # ours
    c.figure5.flip_rate = 0.05  # the paper's: 5% of the negatives relabelled positive
    c.figure5.seed = 0
    c.figure5.ls_alphas = (0.0, 0.1, 0.5) if smoke else (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)  # ours
    # L2 strength lambda: objective = mean CE + lambda * (|kernel|^2 + |bias|^2) of the
    # Dense(2) logit layer. The bias is penalised too, as LS' regulariser Omega
    # penalises the whole logit function: with the kernel alone penalised the
    # separator is pushed back towards the negatives at large strengths.
    c.figure5.l2_strengths = (0.0, 0.01, 0.3) if smoke else (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3)  # ours
    c.figure5.l2_on_bias = True
    c.figure5.max_iterations = 2000  # L-BFGS iterations per fit (full batch, float64)
    c.figure5.gradient_tolerance = 1e-6  # a fit whose final gradient norm exceeds this fails

    c.theorem1 = ml_collections.ConfigDict()
    c.theorem1.num_classes = 3  # ours: L
    c.theorem1.dim = 4  # ours: d, W is L x d
    c.theorem1.num_examples = 256 if smoke else 1024  # x ~ N(input_mean * 1, I)
    c.theorem1.input_mean = 0.5  # ours: an uncentred input; the theorem needs only a finite mean
    c.theorem1.num_random = 200 if smoke else 1000  # random W for Omega(W) >= L log L
    c.theorem1.random_scale_min = 1e-3  # entries of W ~ N(0, s^2), s log-uniform in [min, max]
    c.theorem1.random_scale_max = 10.0
    c.theorem1.gd_steps = 300 if smoke else 1000
    c.theorem1.gd_learning_rate = 0.5
    c.theorem1.identity_alpha = 0.3  # checks LS = (1 - alpha) CE + (alpha / L) Omega at this alpha
    c.theorem1.seed = 0
    return c
