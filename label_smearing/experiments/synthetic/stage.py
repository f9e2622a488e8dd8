"""The stage: `run(argv)`, the `smear synthetic` command, and its lifecycle computation `_compute`.

`_compute` runs the three experiments into the artifact directory and writes their figures,
JSON, Markdown and the manifest; `_validate` checks the config's sections first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from label_smearing.core import artifacts, plots, registry
from label_smearing.core.cli_common import command_parser, parse_stage_args
from label_smearing.core.config import to_plain
from label_smearing.core.errors import require
from label_smearing.core.lifecycle import CACHED, run_stage
from label_smearing.core.registry import SYNTHETIC, StageRequest
from label_smearing.experiments.synthetic.figure1 import FIGURE1_METHODS, figure1_curves, figure1_key_points
from label_smearing.experiments.synthetic.figure5 import run_figure5
from label_smearing.experiments.synthetic.figures import plot_figure1, plot_figure5
from label_smearing.experiments.synthetic.markdown import figure5_markdown, summary_markdown
from label_smearing.experiments.synthetic.progress import progress
from label_smearing.experiments.synthetic.theorem1 import run_theorem1
from label_smearing.modeling.losses import LS


def _write_text(path: Path, text: str) -> None:
    artifacts.atomic_write_bytes(path, text.encode())


def _validate(config: ml_collections.ConfigDict) -> None:
    for section in ("figure1", "figure5", "theorem1"):
        require(section in config, f"config has no section {section!r}")
    f1, f5, t1 = config.figure1, config.figure5, config.theorem1
    require(
        len(f1.alphas) > 0 and all(0 <= a < 1 for a in f1.alphas),
        f"figure1.alphas must be non-empty and in [0, 1) (BC inverts T_alpha), got {tuple(f1.alphas)}",
    )
    require(f1.margin_min < 0 < f1.margin_max, "figure1 needs margin_min < 0 < margin_max")
    require(f1.num_points >= 3, f"figure1.num_points must be >= 3, got {f1.num_points}")
    require(
        len(f5.mean) == 2 and any(m != 0 for m in f5.mean),
        f"figure5.mean must be a non-zero 2-vector, got {tuple(f5.mean)}",
    )
    require(f5.scale > 0, f"figure5.scale must be > 0, got {f5.scale}")
    require(f5.num_per_class >= 2, f"figure5.num_per_class must be >= 2, got {f5.num_per_class}")
    require(0 <= f5.flip_rate < 1, f"figure5.flip_rate must be in [0, 1), got {f5.flip_rate}")
    require(
        len(f5.ls_alphas) > 0 and all(0 <= a < 1 for a in f5.ls_alphas),
        f"figure5.ls_alphas must be non-empty and in [0, 1), got {tuple(f5.ls_alphas)}",
    )
    require(
        len(f5.l2_strengths) > 0 and all(s >= 0 for s in f5.l2_strengths),
        f"figure5.l2_strengths must be non-empty and >= 0, got {tuple(f5.l2_strengths)}",
    )
    require(
        f5.max_iterations >= 1 and f5.gradient_tolerance > 0,
        "figure5.max_iterations must be >= 1 and figure5.gradient_tolerance > 0",
    )
    require(
        t1.num_classes >= 2 and t1.dim >= 1 and t1.num_examples >= 1 and t1.num_random >= 1,
        "theorem1 needs num_classes >= 2, dim >= 1, num_examples >= 1, num_random >= 1",
    )
    require(0 < t1.random_scale_min <= t1.random_scale_max, "theorem1 needs 0 < random_scale_min <= max")
    require(
        t1.gd_steps >= 1 and t1.gd_learning_rate > 0, "theorem1 needs gd_steps >= 1, gd_learning_rate > 0"
    )
    require(
        0 <= t1.identity_alpha <= 1, f"theorem1.identity_alpha must be in [0, 1], got {t1.identity_alpha}"
    )


def _timed(name: str, seconds: dict[str, float], function: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    progress(f"{name} ...")
    value = function()
    seconds[name] = time.perf_counter() - start
    progress(f"{name} done in {seconds[name]:.1f} s")
    return value


def run(argv: Sequence[str] | None = None) -> Path:
    """Runs the stage; returns the artifact directory.

    Raises:
      UserError: bad config values, a complete artifact without --force, or a
        Figure 5 fit that does not converge.
    """
    args, config, _ = parse_stage_args(command_parser(SYNTHETIC), argv, validate=_validate)
    section = to_plain(config)
    fp = artifacts.fingerprint(SYNTHETIC, section)
    out_dir = artifacts.artifact_dir(args.workdir, registry.kind(SYNTHETIC).folder, SYNTHETIC, fp)
    request = StageRequest(config, {}, out_dir, fp, SYNTHETIC, force=args.force)
    status, _ = run_stage(request, lambda r: _compute(r.config, section, r.out_dir, fp, r.force))
    if status == CACHED:
        progress(f"cached: {out_dir} is complete with fingerprint {fp[:10]} (--force recomputes it)")
    return out_dir


def _compute(config: ml_collections.ConfigDict, section: dict, out_dir: Path, fp: str, force: bool) -> dict:
    """Runs the three experiments into `out_dir`; returns its manifest."""
    out = artifacts.prepare_output(out_dir, force=force)
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    progress(f"writing {out}")

    margins = np.linspace(config.figure1.margin_min, config.figure1.margin_max, config.figure1.num_points)
    curves = _timed("figure 1", seconds, lambda: figure1_curves(config.figure1.alphas, margins))
    figure1_points = figure1_key_points(margins, curves)
    for method in FIGURE1_METHODS:
        plots.save(plot_figure1(method, margins, curves[method]), out / f"figure1_{method}")
    artifacts.atomic_write_json(
        out / "figure1.json",
        {
            "margin": "m = f_1 - f_0, logits (-m/2, m/2), label 1",
            "margins": np.round(margins, 6).tolist(),
            "curves": {
                m: {f"{a:g}": np.round(v, 6).tolist() for a, v in c.items()} for m, c in curves.items()
            },
            "key_points": figure1_points,
        },
    )

    figure5 = _timed("figure 5", seconds, lambda: run_figure5(config.figure5))
    for kind in (LS, "l2"):
        plots.save(plot_figure5(kind, figure5, config.figure5), out / f"figure5_{kind}")
    artifacts.atomic_write_json(
        out / "figure5_table.json",
        {
            "setup": {
                **to_plain(config.figure5),
                "num_flipped": int(figure5["data"]["is_noisy"].sum()),
                "bayes_error": figure5["bayes_error"],
            },
            "definitions": {
                "angle_deg": "signed angle from the mean direction to the separator's normal w",
                "offset": "t where the separator meets the line t * mean/|mean|; negative = towards negatives",
                "disagreement": "P_x[sign(w.x + b) != sign(mean.x)], x from the clean mixture (exact)",
                "clean_error": "error rate of the separator on the clean distribution",
            },
            "rows": figure5["rows"],
        },
    )
    _write_text(out / "figure5_table.md", figure5_markdown(figure5))

    theorem1 = _timed("theorem 1", seconds, lambda: run_theorem1(config.theorem1))
    artifacts.atomic_write_json(out / "theorem1.json", theorem1)
    seconds["total"] = time.perf_counter() - started
    _write_text(out / "summary.md", summary_markdown(config, figure1_points, figure5, theorem1, seconds))

    manifest = artifacts.write_manifest(
        out,
        stage=SYNTHETIC,
        fingerprint=fp,
        config=section,
        counts={
            "figure5_points": len(figure5["data"]["x"]),
            "figure5_fits": len(figure5["rows"]) - 1,
            "theorem1_random_weights": config.theorem1.num_random,
        },
        extra={"theorem1_checks": theorem1["checks"], "seconds": seconds},
    )

    by_kind = {k: [r for r in figure5["rows"] if r["kind"] == k] for k in ("clean", LS, "l2")}
    clean = by_kind["clean"][0]
    progress("summary:")
    print(f"  figure 5 clean CE: angle {clean['angle_deg']:+.2f} deg, offset {clean['offset']:+.4f}")
    for kind, symbol in ((LS, "alpha"), ("l2", "lambda")):
        trail = ", ".join(f"{r['parameter']:g}: {r['disagreement']:.4f}" for r in by_kind[kind])
        print(f"  figure 5 disagreement with Bayes by {symbol} ({kind}): {trail}")
    print(
        "  theorem 1: " + ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in theorem1["checks"].items())
    )
    print(f"  outputs: {out} (summary.md); {seconds['total']:.1f} s")
    return manifest
