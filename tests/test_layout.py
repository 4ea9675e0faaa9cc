"""The layout by stage: rules/<stage>.smk, resstream/<stage>/ and tests/<stage>/ under one name, and
stage packages that name their entry points without importing them."""

import importlib
import subprocess
import sys

import pytest

from helpers import REPO

STAGES = ["model", "fv", "activations", "analysis", "atlas", "compare", "workflow", "data"]


def test_every_rule_file_has_its_package_and_test_folder():
    for smk in (REPO / "rules").glob("*.smk"):
        stage = "workflow" if smk.stem == "common" else smk.stem
        assert (REPO / "resstream" / stage / "__init__.py").is_file(), stage
        assert list((REPO / "tests" / stage).glob("test_*.py")), stage


@pytest.mark.parametrize("stage", STAGES)
def test_entry_points_resolve_to_the_module_that_defines_them(stage):
    package = importlib.import_module(f"resstream.{stage}")
    assert package.__all__ and sorted(dir(package)) == package.__all__
    for name in package.__all__:
        obj = getattr(package, name)
        assert obj.__module__.startswith(f"resstream.{stage}."), (name, obj.__module__)
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        package.nothing_here  # noqa: B018  (the attribute look-up is what is tested)


def test_importing_a_stage_package_imports_none_of_its_modules():
    """A job's code fingerprint follows import statements; an __init__ that imported its modules would
    put every module of the stage into every job that touches one of them."""
    code = (
        "import sys, resstream." + ", resstream.".join(STAGES) + "\n"
        "print(sorted(m for m in sys.modules if m.startswith('resstream.') and m.count('.') > 1"
        " and m != 'resstream.base.lazy_exports'))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert loaded.strip() == "[]", loaded
