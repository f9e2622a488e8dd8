"""ModelSpec: one model identity, read from and written to every form it takes."""

import os

import pytest

from label_smearing.core.config import load_config, to_plain
from label_smearing.core.errors import UserError
from label_smearing.core.spec import STUDENT, TEACHER, ModelSpec, student_cell, teacher_cell

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = [
    f"{ROOT}/label_smearing/configs/fmnist_paper.py",
    f"{ROOT}/label_smearing/configs/cifar_distill.py:cifar100,resnet32",
]


def _sweep(config_spec):
    config = load_config(config_spec)
    teachers = [ModelSpec.parse(s, seed=2) for s in config.sweep.teachers]
    students = [ModelSpec.parse(s, role=STUDENT, seed=2, temperature=2.0) for s in config.sweep.students]
    return config, teachers + students


@pytest.mark.parametrize("config_spec", CONFIGS)
def test_every_paper_sweep_entry_round_trips_through_config_description_and_sweep_string(config_spec):
    config, specs = _sweep(config_spec)
    assert len(specs) == len(set(specs)) > 10
    for spec in specs:
        assert ModelSpec.from_description(spec.describe()) == spec
        role = TEACHER if spec.role == TEACHER else STUDENT
        assert ModelSpec.parse(spec.sweep, role=role, seed=2, temperature=2.0) == spec
        applied = to_plain(spec.apply(config, transition_file="T.json", logits_dir="logits"))
        teacher = to_plain(spec.teacher.apply(config)) if spec.teacher else None
        if spec.teacher is not None and spec.teacher.transition == "estimated":
            teacher["loss"]["transition_file"] = "T.json"
        assert ModelSpec.from_config(applied, teacher) == spec


def test_names_are_the_directory_names_smear_run_has_always_used():
    cases = {
        ("ce", TEACHER): "teacher-ce-s2",
        ("ls:0.1", TEACHER): "teacher-ls0.1-s2",
        ("fc:est", TEACHER): "teacher-fc-est-s2",
        ("ls:-0.2", TEACHER): "teacher-ls-0.2-s2",  # negative smoothing
        ("ls:-8", TEACHER): "teacher-ls-8-s2",  # any alpha < 1: Wei et al. sweep to -8
        ("ls:-0.2>ce", STUDENT): "student-T2-ce-s2-from-ls-0.2",
        ("ce>ce", STUDENT): "student-T2-ce-s2-from-ce",
        ("ls:0.1>ce", STUDENT): "student-T2-ce-s2-from-ls0.1",
        ("ce>fc:0.1", STUDENT): "student-T2-fc0.1-s2-from-ce",
        ("bc:est>ls:0.2", STUDENT): "student-T2-ls0.2-s2-from-bcest",
    }
    for (text, role), name in cases.items():
        assert ModelSpec.parse(text, role=role, seed=2, temperature=2.0).name == name


def test_a_cell_forgets_seed_and_noise_setting_and_is_the_report_key():
    a = ModelSpec.parse("ls:0.1>ce", role=STUDENT, seed=0, temperature=2.0, noise_rate=0.2)
    b = ModelSpec.parse("ls:0.1>ce", role=STUDENT, seed=4, temperature=2.0, noise_rate=0.2)
    assert a != b and a.cell == b.cell == student_cell(teacher_cell("ls", 0.1), "ce", 0.0, 2.0)
    assert a.cell.name == "student-T2-ce-from-ls0.1"
    assert ModelSpec.parse("ce").cell == teacher_cell("ce")


@pytest.mark.parametrize(
    "text, role, message",
    [
        ("xx", TEACHER, "unknown method 'xx'; one of ce, ls, fc, bc"),
        ("ce:abc", TEACHER, "alpha 'abc' is not a number"),
        ("ce:0.2", TEACHER, "ce takes no alpha"),
        ("ls:est", TEACHER, "only fc and bc use an estimated T"),
        ("bc:1", TEACHER, "bc: alpha must be in [0, 1), got 1"),
        ("ls:1", TEACHER, "alpha must be in (-inf, 1), got 1"),
        ("ls:1.5", TEACHER, "alpha must be in (-inf, 1), got 1.5"),
        ("ls:nan", TEACHER, "alpha must be in (-inf, 1), got nan"),
        ("ls:-inf", TEACHER, "alpha must be in (-inf, 1), got -inf"),
        ("fc:-0.2", TEACHER, "fc: alpha must be in [0, 1], got -0.2"),
        ("ce>ls:-0.1", STUDENT, "student ls: alpha must be in [0, 1], got -0.1"),
        ("ce>bc:0.1", STUDENT, "unknown student method 'bc'; one of ce, ls, fc"),
        ("ce>ls", STUDENT, "student ls needs an alpha"),
    ],
)
def test_a_bad_sweep_string_is_one_line_naming_the_entry(text, role, message):
    with pytest.raises(UserError) as error:
        ModelSpec.parse(text, role=role)
    assert message in str(error.value) and repr(text) in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    "description",
    [{"role": "teacher", "method": "ls", "alpha": 0.1}, {"role": "teacher", "method": "ls", "alpha": 0.1, "seed": "x"},
     "not a mapping", {"role": "teacher", "method": "focal", "alpha": 0.1, "seed": 0}],
)  # fmt: skip
def test_a_bad_description_is_a_user_error(description):
    with pytest.raises(UserError, match="model description"):
        ModelSpec.from_description(description)


def test_labels_name_the_method_as_the_claims_table_shows_it():
    assert [ModelSpec.parse(s).label for s in ("ce", "ls:0.1", "fc:est")] == [
        "CE",
        "LS α=0.1",
        "FC (estimated T)",
    ]
    assert ModelSpec.parse("ls:0.1>ce", role=STUDENT).label == "student ls:0.1>ce"
