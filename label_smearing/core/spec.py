"""One model's identity: role, method, alpha, transition source, teacher, student options, seed, noise.

`ModelSpec` is the only place that knows what a model *is*. Everything that
used to encode it separately reads it from here:

- `parse` reads a sweep string (`ls:0.1`, `fc:est`, `ls:0.1>ce`);
- `overrides` / `apply` turn it into config values (`loss.*`, `distill.*`,
  `train.seed`), and `from_config` reads it back from a model's config;
- `name` is its artifact directory's name (`teacher-ls0.1-s0`,
  `student-T2-ce-s0-from-ls0.1`);
- `describe` is the JSON that metrics.json and the report carry, and
  `from_description` reads it back;
- `cell` (the spec without seed and noise setting) is the report's key: the
  seeds of one cell are averaged.

Sweep strings:
  teacher  METHOD[:ALPHA], METHOD a loss of `label_smearing.modeling.losses.LOSSES`;
           ALPHA a number in the loss's range (`LossEntry.alphas`: [0, 1] for FC,
           [0, 1) for BC, any finite alpha < 1 for LS, where `ls:-0.2` is negative smoothing),
           or `est` for a loss that takes a transition matrix: T estimated from the
           baseline teacher (Patrini et al.).
  student  TEACHER>STUDENT, STUDENT a method of `STUDENT_METHODS` with its alpha.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

import ml_collections

from label_smearing.core.errors import UserError
from label_smearing.modeling.losses import CE, FC, LOSSES, LS, PROBABILITY

TEACHER, STUDENT = "teacher", "student"
ROLES = (TEACHER, STUDENT)
SMOOTHING, ESTIMATED = "smoothing", "estimated"  # where a loss's transition matrix comes from
TRANSITIONS = (SMOOTHING, ESTIMATED)
ESTIMATE = "est"  # the sweep's word for an estimated T: `fc:est`
UNKNOWN = "unknown"  # a student's teacher that is not known (described as such)
# Student methods: the distillation option each sets to its alpha (the baseline: plain distillation).
STUDENT_METHODS: dict[str, str | None] = {CE: None, LS: "smoothing", FC: "fc_alpha"}


def _alpha(value: Any) -> float:
    """Alphas are compared as keys: one rounding everywhere."""
    return round(float(value), 6)


STUDENT_ALPHAS = PROBABILITY  # a student's smoothing or T_alpha


def _parse_alpha(text: str, where: str) -> float:
    """A number; its range is the method's, checked by `ModelSpec`."""
    try:
        return float(text)
    except ValueError:
        raise UserError(f"{where}: alpha {text!r} is not a number") from None


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What one trained model is. Frozen and hashable; `None` seed/noise_rate mean "any" (a cell).

    Attributes:
      role: TEACHER (trained on noisy labels) or STUDENT (distilled from a teacher's logits).
      method: a loss name (teacher) or a `STUDENT_METHODS` name (student).
      alpha: the method's alpha; 0 for the baseline and for an estimated T.
      transition: SMOOTHING (T_alpha) or ESTIMATED (T from the baseline teacher's logits).
      teacher: a student's teacher; None for a teacher, or a student whose teacher is unknown.
      temperature: a student's distillation temperature; None for a teacher.
      seed: the training seed.
      noise_rate: the noise setting of a multi-rate sweep; None when there is one setting.
    """

    role: str
    method: str
    alpha: float = 0.0
    transition: str = SMOOTHING
    teacher: ModelSpec | None = None
    temperature: float | None = None
    seed: int | None = 0
    noise_rate: float | None = None

    def __post_init__(self):
        if self.role not in ROLES:
            raise UserError(f"model role must be one of {', '.join(ROLES)}, got {self.role!r}")
        methods = LOSSES if self.role == TEACHER else STUDENT_METHODS
        if self.method not in methods:
            raise UserError(f"unknown {self.role} method {self.method!r}; one of {', '.join(methods)}")
        if self.transition not in TRANSITIONS:
            raise UserError(f"transition must be one of {', '.join(TRANSITIONS)}, got {self.transition!r}")
        if self.transition == ESTIMATED and not (
            self.role == TEACHER and LOSSES[self.method].uses_transition
        ):
            raise UserError(f"{self.method} cannot use an estimated T")
        alpha = 0.0 if self.transition == ESTIMATED or not self._uses_alpha else _alpha(self.alpha)
        alphas = LOSSES[self.method].alphas if self.role == TEACHER else STUDENT_ALPHAS
        if alpha not in alphas:
            raise UserError(f"{self.role} {self.method}: alpha must be in {alphas}, got {alpha:g}")
        object.__setattr__(self, "alpha", alpha)
        if self.role == STUDENT:
            temperature = float(self.temperature if self.temperature is not None else 1.0)
            object.__setattr__(self, "temperature", temperature)
        elif self.teacher is not None or self.temperature is not None:
            raise UserError("a teacher has no teacher and no temperature")

    @property
    def _uses_alpha(self) -> bool:
        if self.role == TEACHER:
            return LOSSES[self.method].uses_alpha
        return STUDENT_METHODS[self.method] is not None

    # ------------------------------------------------------------ sweep strings
    @classmethod
    def parse(
        cls, text: str, *, role: str = TEACHER, seed: int | None = 0, temperature: float = 1.0,
        noise_rate: float | None = None,
    ) -> ModelSpec:  # fmt: skip
        """A spec from a sweep string: `sweep.teachers` entries with role TEACHER, `sweep.students` with STUDENT.

        Raises:
          UserError: naming the entry and what is wrong with it.
        """
        if role == STUDENT:
            where = f"sweep.students entry {text!r}"
            teacher_text, sep, student = text.partition(">")
            if not sep:
                raise UserError(f"{where}: expected TEACHER>STUDENT, e.g. {LS}:0.1>{CE}")
            teacher = cls.parse(teacher_text, seed=seed, noise_rate=noise_rate)
            method, _, alpha = student.strip().partition(":")
            if method not in STUDENT_METHODS:
                raise UserError(
                    f"{where}: unknown student method {method!r}; one of {', '.join(STUDENT_METHODS)}"
                )
            if STUDENT_METHODS[method] is not None and not alpha:
                raise UserError(f"{where}: student {method} needs an alpha, e.g. {method}:0.1")
            value = _parse_alpha(alpha, where) if STUDENT_METHODS[method] is not None else 0.0
            return cls._checked(
                where, role=STUDENT, method=method, alpha=value, teacher=teacher,
                temperature=temperature, seed=seed, noise_rate=noise_rate,
            )  # fmt: skip
        where = f"sweep.teachers entry {text!r}"
        method, _, alpha = text.strip().partition(":")
        if method not in LOSSES:
            raise UserError(f"{where}: unknown method {method!r}; one of {', '.join(LOSSES)}")
        entry = LOSSES[method]
        if not entry.uses_alpha:
            if alpha and _parse_alpha(alpha, where) != 0:
                raise UserError(f"{where}: {method} takes no alpha")
            return cls(TEACHER, method, seed=seed, noise_rate=noise_rate)
        if alpha == ESTIMATE:
            if not entry.uses_transition:
                uses = [name for name, e in LOSSES.items() if e.uses_transition]
                raise UserError(f"{where}: only {' and '.join(uses)} use an estimated T")
            return cls(TEACHER, method, transition=ESTIMATED, seed=seed, noise_rate=noise_rate)
        if not alpha:
            raise UserError(f"{where}: {method} needs an alpha, e.g. {method}:0.1")
        value = _parse_alpha(alpha, where)
        return cls._checked(where, role=TEACHER, method=method, alpha=value, seed=seed, noise_rate=noise_rate)

    @classmethod
    def _checked(cls, where: str, **fields) -> ModelSpec:
        try:
            return cls(**fields)
        except UserError as e:
            raise UserError(f"{where}: {e}") from None

    @property
    def sweep(self) -> str:
        """The sweep string: `ce`, `ls:0.1`, `fc:est`, `ls:0.1>ce`, `?>ce` (teacher unknown)."""
        if self.role == STUDENT:
            teacher = self.teacher.sweep if self.teacher is not None else "?"
            own = self.method if STUDENT_METHODS[self.method] is None else f"{self.method}:{self.alpha:g}"
            return f"{teacher}>{own}"
        if self.transition == ESTIMATED:
            return f"{self.method}:{ESTIMATE}"
        return self.method if not self._uses_alpha else f"{self.method}:{self.alpha:g}"

    # ------------------------------------------------------------ names and keys
    @property
    def name(self) -> str:
        """The artifact directory's name (before its fingerprint suffix); a cell's name has no seed."""
        seed = "" if self.seed is None else f"-s{self.seed}"  # a cell has no seed
        if self.role == STUDENT:
            own = self.method if STUDENT_METHODS[self.method] is None else f"{self.method}{self.alpha:g}"
            origin = f"-from-{self.teacher.sweep.replace(':', '')}" if self.teacher is not None else ""
            return f"student-T{self.temperature:g}-{own}{seed}{origin}"
        return f"teacher-{self.sweep.replace(':', '-' if self.transition == ESTIMATED else '')}{seed}"

    @property
    def cell(self) -> ModelSpec:
        """The spec without seed and noise setting: the report averages the seeds of one cell."""
        teacher = self.teacher.cell if self.teacher is not None else None
        return dataclasses.replace(self, seed=None, noise_rate=None, teacher=teacher)

    @property
    def label(self) -> str:
        """A short display label: `LS α=0.1`, `FC (estimated T)`, `CE`."""
        if self.role == STUDENT:
            return f"student {self.sweep}"
        label = LOSSES[self.method].label
        if self.transition == ESTIMATED:
            return f"{label} (estimated T)"
        return f"{label} α={self.alpha:g}" if self._uses_alpha else label

    # ------------------------------------------------------------ configs
    def overrides(self, *, transition_file: str = "", logits_dir: str = "") -> dict[str, Any]:
        """The config values that make a base config train this model (dotted key -> value).

        Args:
          transition_file: an ESTIMATED teacher's T (the estimate artifact's transition.json).
          logits_dir: a student's exported-logits artifact.
        """
        values: dict[str, Any] = {"train.seed": int(self.seed or 0)}
        if self.role == TEACHER:
            values.update({
                "loss.name": self.method, "loss.alpha": float(self.alpha),
                "loss.transition": "file" if self.transition == ESTIMATED else SMOOTHING,
                "loss.transition_file": transition_file, "distill.enabled": False,
            })  # fmt: skip
            return values
        values.update({"distill.enabled": True, "distill.logits_dir": logits_dir})
        for option in filter(None, STUDENT_METHODS.values()):
            values[f"distill.{option}"] = float(self.alpha) if option == STUDENT_METHODS[self.method] else 0.0
        values["distill.temperature"] = float(self.temperature)
        return values

    def apply(self, config: ml_collections.ConfigDict, **paths: str) -> ml_collections.ConfigDict:
        """A copy of `config` that trains this model (see `overrides`)."""
        out = copy.deepcopy(config)
        for key, value in self.overrides(**paths).items():
            section, leaf = key.split(".")
            out[section][leaf] = value
        return out

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], teacher_config: Mapping[str, Any] | None = None
    ) -> ModelSpec:
        """The spec of the model a config trains (plain dicts, e.g. a model artifact's config.json).

        Args:
          config: sections loss, train, distill.
          teacher_config: for a student, its teacher's config; None if unknown.
        """
        seed = int((config.get("train") or {}).get("seed", 0))
        distill = config.get("distill") or {}
        if not distill.get("enabled", False):
            loss = config.get("loss") or {}
            method = str(loss.get("name"))
            estimated = (
                loss.get("transition") == "file" and method in LOSSES and LOSSES[method].uses_transition
            )
            return cls(
                TEACHER,
                method,
                float(loss.get("alpha", 0.0)),
                ESTIMATED if estimated else SMOOTHING,
                seed=seed,
            )
        chosen = [
            m for m, option in STUDENT_METHODS.items() if option and float(distill.get(option, 0.0)) > 0
        ]
        if len(chosen) > 1:
            options = " and ".join(f"distill.{STUDENT_METHODS[m]}" for m in chosen)
            raise UserError(f"{options} are both set; a student uses one of them")
        method = chosen[0] if chosen else CE
        alpha = float(distill.get(STUDENT_METHODS[method], 0.0)) if chosen else 0.0
        teacher = cls.from_config(teacher_config) if teacher_config is not None else None
        return cls(
            STUDENT,
            method,
            alpha,
            teacher=teacher,
            temperature=float(distill.get("temperature", 1.0)),
            seed=seed,
        )

    # ------------------------------------------------------------ descriptions
    def describe(self) -> dict[str, Any]:
        """The JSON metrics.json and the report carry: role, method, alpha, seed, transition (+ teacher)."""
        out = {
            "role": self.role, "method": self.method, "alpha": self.alpha, "seed": self.seed,
            "transition": self.transition,
        }  # fmt: skip
        if self.role == STUDENT:
            teacher = self.teacher
            out.update({
                "teacher_method": teacher.method if teacher else UNKNOWN,
                "teacher_alpha": teacher.alpha if teacher else None,
                "teacher_transition": teacher.transition if teacher else UNKNOWN,
                "student_method": self.method, "student_alpha": self.alpha, "temperature": self.temperature,
            })  # fmt: skip
        return out

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> ModelSpec:
        """The inverse of `describe`.

        Raises:
          UserError: a key is missing or a value is not one the registries know.
        """
        if not isinstance(description, Mapping):
            raise UserError(f"model description is not a mapping: {description!r}")
        d = dict(description)
        keys = ("role", "method", "alpha", "seed")
        if d.get("role") == STUDENT:
            keys += ("teacher_method", "teacher_alpha", "student_method", "student_alpha", "temperature")
        for key in keys:
            if key not in d:
                raise UserError(f"model description has no {key!r}: {d}")
        try:
            teacher = None
            if d["role"] == STUDENT and d["teacher_method"] != UNKNOWN:
                teacher = cls(
                    TEACHER, d["teacher_method"], float(d["teacher_alpha"] or 0.0),
                    d.get("teacher_transition", SMOOTHING), seed=d["seed"],
                )  # fmt: skip
            return cls(
                d["role"], d["method"], float(d["alpha"] or 0.0), d.get("transition", SMOOTHING),
                teacher=teacher, temperature=d.get("temperature") if d["role"] == STUDENT else None,
                seed=int(d["seed"]),
            )  # fmt: skip
        except (UserError, ValueError, TypeError) as e:
            raise UserError(f"model description {d}: {e}") from None


# ---------------------------------------------------------------- report keys
def teacher_cell(method: str, alpha: float = 0.0, transition: str = SMOOTHING) -> ModelSpec:
    """The key of a teacher's seeds: `ModelSpec.cell` of every teacher with this method, alpha and T."""
    return ModelSpec(TEACHER, method, alpha, transition, seed=None)


def student_cell(teacher: ModelSpec | None, method: str, alpha: float, temperature: float) -> ModelSpec:
    """The key of a student's seeds; `teacher` a teacher cell (None: unknown)."""
    return ModelSpec(STUDENT, method, alpha, teacher=teacher, temperature=temperature, seed=None)


BASELINE = teacher_cell(CE)  # the cross-entropy teacher's cell
