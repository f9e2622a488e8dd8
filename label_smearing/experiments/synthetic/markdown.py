"""The stage's Markdown: the Figure 5 table (figure5_table.md) and summary.md."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ml_collections

from label_smearing.modeling.losses import LS


def figure5_markdown(result: Mapping[str, Any]) -> str:
    header = (
        "| separator | labels | parameter | angle (deg) | offset | disagreement | clean error | norm of w "
        "| final grad norm |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    names = {"bayes": "Bayes (mean . x = 0)", "clean": "CE", LS: "LS alpha", "l2": "CE + L2 lambda"}
    lines = []
    for r in result["rows"]:
        parameter = "-" if r["parameter"] is None else f"{r['parameter']:g}"
        weight = "-" if r["weight_norm"] is None else f"{r['weight_norm']:.3f}"
        gradient = "-" if r["gradient_norm"] is None else f"{r['gradient_norm']:.1e}"
        lines.append(
            f"| {names[r['kind']]} | {r['labels']} | {parameter} | {r['angle_deg']:+.2f} | {r['offset']:+.4f} "
            f"| {r['disagreement']:.5f} | {r['clean_error']:.5f} | {weight} | {gradient} |"
        )
    return header + "\n".join(lines) + "\n"


def summary_markdown(
    config: ml_collections.ConfigDict,
    figure1_points: Mapping[str, Any],
    figure5: Mapping[str, Any],
    theorem1: Mapping[str, Any],
    seconds: Mapping[str, float],
) -> str:
    f5 = config.figure5
    mean = ", ".join(f"{m:g}" for m in f5.mean)
    lines = [
        "# Theory experiments: Figure 1, Figure 5, Theorem 1",
        "",
        "## Figure 1: the logistic loss under LS, BC and FC",
        "",
        "Two classes, true label 1, logits (-m/2, m/2), margin m = f_1 - f_0 in "
        f"[{config.figure1.margin_min:g}, {config.figure1.margin_max:g}]; BC and FC use "
        "T_alpha = (1 - alpha) I + (alpha/2) J. Computed with the project's Keras loss objects.",
        "",
        "| method | alpha | loss at m_min | loss at 0 | loss at m_max | min loss | at m |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, by_alpha in figure1_points.items():
        for alpha, p in by_alpha.items():
            lines.append(
                f"| {method.upper()} | {alpha} | {p['loss_at_min_margin']:.4f} | {p['loss_at_zero_margin']:.4f} "
                f"| {p['loss_at_max_margin']:.4f} | {p['min_loss']:.4f} | {p['argmin_margin']:+.2f} |"
            )
    lines += [
        "",
        "LS has a finite positive minimum (at m = log((2 - alpha)/alpha)); BC goes negative for large "
        "positive m; FC saturates at -log(alpha/2) for large negative m.",
        "",
        "## Figure 5: separators under 5% asymmetric noise",
        "",
        f"Positives N(+({mean}), {f5.scale:g}^2 I), negatives N(-({mean}), {f5.scale:g}^2 I), "
        f"{f5.num_per_class} per class; {int(figure5['data']['is_noisy'].sum())} negatives "
        f"({f5.flip_rate:.0%}, seed {f5.seed}) relabelled positive. Model: a float64 Keras Dense(2) logit "
        "layer fitted by full-batch L-BFGS from zero to the stated gradient norm, on the project's LS "
        "cross-entropy (alpha = 0 is plain CE); L2 adds lambda * (|kernel|^2 + |bias|^2)"
        + ("" if f5.l2_on_bias else " (bias not penalised: figure5.l2_on_bias = false)")
        + ". The Bayes separator is mean . x = 0 "
        f"(Bayes error {figure5['bayes_error']:.5f}).",
        "",
        "- angle: from the mean direction to the separator's normal, degrees;",
        "- offset: where the separator crosses the line through the two class means, measured from the "
        "origin towards the positive mean (negative: towards the negatives);",
        "- disagreement (the distance to the Bayes separator): P_x[the separator and the Bayes separator "
        "classify x differently], x from the clean mixture, exact (bivariate normal CDF);",
        "- clean error: the separator's error rate on the clean distribution.",
        "",
        figure5_markdown(figure5),
        "## Theorem 1: W = 0 minimises Omega(W) = E_x[L logsumexp(W x) - sum_y (W x)_y]",
        "",
    ]
    s = theorem1["setup"]
    a, b, c, d = (
        theorem1[k] for k in ("a_gradient_at_zero", "b_lower_bound", "c_gradient_descent", "d_ls_identity")
    )
    r, z = c["random_start"], c["centred_start"]
    lines += [
        f"L = {s['num_classes']}, W is {s['num_classes']} x {s['dim']}, x ~ {s['x']}, "
        f"{s['num_examples']} examples; L log L = {s['L_log_L']:.6f}.",
        "",
        f"- (a) |grad Omega(0)| = {a['norm']:.3g} (tf.GradientTape); Omega(0) - L log L = "
        f"{a['omega_minus_L_log_L']:.3g}.",
        f"- (b) min over {b['num_random']} random W (entries N(0, s^2), s log-uniform in "
        f"[{b['scales'][0]:g}, {b['scales'][1]:g}]) of Omega(W) - L log L = {b['min_omega_minus_L_log_L']:.3g} "
        f"(at s = {b['scale_at_min']:.3g}); {b['num_below_bound']} below the bound.",
        f"- (c) gradient descent on Omega, {c['steps']} steps of size {c['learning_rate']:g}. From a random W: "
        f"norm of W {r['norm_start']:.4f} -> {r['norm_end']:.4f}, of the centred W - 1 mean_row^T "
        f"{r['centred_norm_start']:.4f} -> {r['centred_norm_end']:.3g}, Omega - L log L at the end "
        f"{r['omega_end_minus_L_log_L']:.3g}, final gradient norm {r['gradient_norm_end']:.3g}. Omega(W + 1 v^T) "
        "= Omega(W), so every W with identical rows is a minimiser (W = 0 among them) and descent keeps "
        f"the mean row (norm {r['mean_row_norm_start']:.4f}, drift {r['mean_row_drift']:.2g}). From the same "
        f"W centred (rows summing to zero): norm {z['norm_start']:.4f} -> {z['norm_end']:.3g}, i.e. W -> 0.",
        f"- (d) the project's LabelSmoothingCrossEntropy(alpha={d['alpha']:g}) equals (1 - alpha) CE + "
        f"(alpha/L) Omega per example to {d['max_abs_error']:.2g} (float32 loss).",
        "",
        "Checks: " + ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in theorem1["checks"].items()) + ".",
        "",
        "Runtime: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()) + ".",
        "",
    ]
    return "\n".join(lines)
