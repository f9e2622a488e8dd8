"""The bundled configs, named on the command line without a path: `--config quickstart:smoke`.

Each module defines `get_config(arg)` and a docstring whose first line describes it
(`smear configs` lists them). `base` declares every key; it is not a config itself.
"""
