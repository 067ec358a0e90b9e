"""The package's layers, checked on the import statements of every module.

core (model, parametrization, training, data, metrics) is pure: it imports only itself, and
none of the orchestration or I/O libraries. grow (the growth operators) adds only core; config
adds grow. edges (launch, tracking, report, console) use core only. stages use all of those; the
top level (pipeline, run, single) may import everything. Nothing in the package imports the
`analysis` scripts, and neither do the product's tests (the scripts' own tests live in
tests/analysis/).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# layer -> the package's layers it may import (itself included)
ALLOWED = {
    "core": {"core"},
    "grow": {"core", "grow"},
    "config": {"core", "grow", "config"},
    "edges": {"core", "edges"},
    "stages": {"core", "grow", "config", "edges", "stages"},
    "top": {"core", "grow", "config", "edges", "stages", "top"},
}
PURE_BANNED = ("hydra", "omegaconf", "optuna", "submitit", "wandb", "rich")
BANNED = {"core": PURE_BANNED, "grow": PURE_BANNED}


def layer_of(module: str) -> str:
    """'sweep.core.model' -> 'core'; 'sweep.config' -> 'config'; 'sweep.pipeline' -> 'top'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else "top"


def imports_of(path: Path, module: str) -> set[str]:
    """Every module `path` imports, anywhere in it (functions included), as absolute names."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = module.split(".")[: -node.level]
                base = ".".join([*package, base] if base else package)
            if base.count(".") < 2:  # `from pkg import mod` or `from pkg.layer import mod`
                found |= {f"{base}.{alias.name}" for alias in node.names}
            else:
                found.add(base)
    return found


def violations(package_root: Path) -> list[str]:
    """'<module> imports <name>' for every import that breaks the layering."""
    out = []
    for path in sorted(package_root.rglob("*.py")):
        module = ".".join(path.relative_to(package_root.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        if module == package_root.name:
            continue
        layer = layer_of(module)
        for name in sorted(imports_of(path, module)):
            top = name.split(".")[0]
            crosses = top == package_root.name and layer_of(name) not in ALLOWED[layer]
            if top == "analysis" or top in BANNED.get(layer, ()) or crosses:
                out.append(f"{module} imports {name}")
    return out


def test_the_package_keeps_its_layers():
    assert violations(ROOT / "sweep") == []


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "sweep"


@pytest.mark.parametrize(
    "files, expected",
    [
        ({"sweep/core/model.py": "from sweep.edges.launch import run_jobs\n"}, "sweep.core.model"),
        ({"sweep/core/model.py": "def f():\n    import wandb\n"}, "sweep.core.model"),
        ({"sweep/core/train.py": "from ..stages import tune\n"}, "sweep.core.train"),
        ({"sweep/grow/pad.py": "import optuna\n"}, "sweep.grow.pad"),
        ({"sweep/edges/report.py": "from sweep.stages.target import KINDS\n"}, "sweep.edges"),
        ({"sweep/config.py": "from sweep.pipeline import Pipeline\n"}, "sweep.config"),
        ({"sweep/stages/tune.py": "from sweep import pipeline\n"}, "sweep.stages.tune"),
        ({"sweep/pipeline.py": "from analysis.warmstart import runs\n"}, "sweep.pipeline"),
    ],
)
def test_a_module_that_crosses_a_layer_is_named(tmp_path, files, expected):
    package = write_tree(tmp_path, {"sweep/__init__.py": "", **files})
    found = violations(package)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_imports_within_the_rules_pass(tmp_path):
    package = write_tree(
        tmp_path,
        {
            "sweep/__init__.py": "",
            "sweep/core/model.py": "import torch\nfrom sweep.core import parametrization\n",
            "sweep/grow/pad.py": "from sweep.core.model import GPT\n",
            "sweep/stages/tune.py": "import optuna\nfrom sweep.config import plain\n",
            "sweep/pipeline.py": "from sweep.stages.tune import tune_worker\n",
        },
    )
    assert violations(package) == []


def test_the_products_tests_do_not_import_the_analysis_scripts():
    tests = list((ROOT / "tests").glob("*.py"))
    assert tests, "no test modules found"
    offending = [
        f"{path.name} imports {name}"
        for path in tests
        for name in imports_of(path, f"tests.{path.stem}")
        if name.split(".")[0] == "analysis"
    ]
    assert offending == []


def test_only_the_configs_hydra_module_imports_hydra():
    """Building, validating and recording a config need no Hydra: a job or a script can build
    the core's dataclasses from a plain config."""
    modules = sorted((ROOT / "sweep" / "config").glob("*.py"))
    assert {p.stem for p in modules} >= {"schema", "hydra", "records", "hardware", "build"}
    offending = [
        f"{path.name} imports {name}"
        for path in modules
        if path.stem not in ("hydra", "__init__")
        for name in imports_of(path, f"sweep.config.{path.stem}")
        if name.split(".")[0] == "hydra"
    ]
    assert offending == []


def test_the_stage_protocol_knows_no_stage():
    """`sweep.stages.stage` is what every stage builds on; the stages register themselves in
    `sweep.stages.registry`, which nothing but the driver and the summary needs."""
    from sweep.stages.registry import STAGES

    stage_modules = {type(stage).__module__ for stage in STAGES.values()}
    assert len(stage_modules) > 3  # the registry's stages live in modules of their own
    names = imports_of(ROOT / "sweep" / "stages" / "stage.py", "sweep.stages.stage")
    assert not names & stage_modules, names & stage_modules
    assert "sweep.stages.registry" not in names
    importers = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "sweep").rglob("*.py")
        if "sweep.stages.registry" in imports_of(path, "sweep.x")
    }
    assert importers == {"sweep/pipeline.py", "sweep/summary.py"}


def test_every_name_the_config_package_offers_is_found_where_it_says():
    """`sweep.config` loads its names on first use from the module its table names: each one
    must be there, and an unknown name is an AttributeError, as for any module."""
    import importlib

    config = importlib.import_module("sweep.config")
    for name in config.__all__:
        module = importlib.import_module(f"sweep.config.{config._HOMES[name]}")
        assert getattr(config, name) is getattr(module, name), name
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        config.not_a_name  # noqa: B018


def test_the_mup_rule_table_imports_no_model():
    """One table for every model: the rules are functions of a role, a width multiplier and a
    depth ratio, and know neither the GPT nor a user's model."""
    names = imports_of(ROOT / "sweep" / "core" / "mup_rules.py", "sweep.core.mup_rules")
    assert not [n for n in names if n.split(".")[0] == "sweep"], names
    for user in ("parametrization.py", "custom.py", "models.py"):
        path = ROOT / "sweep" / "core" / user
        assert "sweep.core.mup_rules" in imports_of(path, f"sweep.core.{path.stem}"), user


MAX_FUNCTION_LINES = 60  # a function a reader takes in at once


def long_functions(package_root: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """'<file>:<line> <name> (<n> lines)' for every function longer than `limit` lines."""
    found = []
    for path in sorted(package_root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    found.append(f"{path.name}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_in_the_package_is_longer_than_a_screen(tmp_path):
    assert long_functions(ROOT / "sweep") == []
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    package = write_tree(tmp_path, {"sweep/core/long.py": f"def f():\n{body}"})
    assert long_functions(package) == [f"long.py:1 f ({MAX_FUNCTION_LINES + 1} lines)"]
