"""`--config NAME[:arg]` finds a bundled config through the installed package; a file path still works."""

from pathlib import Path

import pytest

from label_smearing.core.config import bundled_configs, config_file, load_config, to_plain
from label_smearing.core.errors import UserError

CONFIGS = Path(__file__).resolve().parents[1] / "label_smearing" / "configs"


def test_a_bundled_name_loads_the_same_config_as_its_file():
    assert to_plain(load_config("quickstart:smoke")) == to_plain(
        load_config(f"{CONFIGS}/quickstart.py:smoke")
    )
    assert to_plain(load_config("cifar:cifar10,resnet32,ls", ["noise.rate=0.4"])) == to_plain(
        load_config(f"{CONFIGS}/cifar.py:cifar10,resnet32,ls", ["noise.rate=0.4"])
    )


def test_the_bundled_configs_are_every_config_module_with_its_first_docstring_line():
    configs = bundled_configs()
    on_disk = {p.stem for p in CONFIGS.glob("*.py")} - {"__init__", "base"}
    assert set(configs) == on_disk
    assert configs["quickstart"].startswith("Quickstart: Fashion-MNIST with 20% symmetric label noise")
    assert config_file("quickstart:smoke") == str(CONFIGS / "quickstart.py")
    assert config_file("my/own.py:x") == "my/own.py"


def test_an_unknown_name_is_one_line_naming_the_bundled_ones():
    with pytest.raises(UserError) as error:
        load_config("quikstart:smoke")
    message = str(error.value)
    assert message.startswith("unknown config 'quikstart': bundled configs are cifar, cifar_distill, ")
    assert "smear configs lists them" in message and "\n" not in message


def test_a_users_own_config_file_starts_from_the_bundled_base(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()  # a user's own configs/ folder shadows nothing of the package
    (tmp_path / "configs" / "__init__.py").write_text("")
    (tmp_path / "configs" / "mine.py").write_text(
        "from label_smearing.configs import base, quickstart\n\n\n"
        "def get_config(arg=None):\n"
        "    c = quickstart.get_config(arg)\n"
        "    c.name = 'mine'\n"
        "    return c\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = load_config("configs/mine.py:smoke")
    assert config.name == "mine" and config.train.steps == load_config("quickstart:smoke").train.steps
    assert load_config("quickstart").name == "quickstart"  # the bundled one, not ./configs
