"""The documentation: its code snippets run as printed, its generated parts (the configuration
reference, the one-line errors) cover what the schema and the code hold, and the README keeps the
first screen a newcomer reads.

The snippets run each in its own interpreter, in a folder laid out like a checkout after
``make demo`` (its activations file made here by the ``resstream activations`` command over a few
generated images, its finished run the session's shared small run)."""

import importlib.util
import json
import re
import subprocess
import sys

import h5py
import pytest
import yaml

from helpers import DOCS, REPO, docs_section
from helpers.workflow import link_images


def load_reference():
    """docs/_hooks/reference.py, the generator mkdocs runs (not a package module)."""
    spec = importlib.util.spec_from_file_location("docs_reference", DOCS / "_hooks" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


reference = load_reference()


def snippets(page: str, heading: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", docs_section(page, heading), flags=re.S)


def run_python(code: str, cwd) -> str:
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{code}\n---\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_use_from_python_snippets_run_as_printed(tmp_path, sample_dir):
    one_fv, activations, unit = snippets("tutorial.md", "Use from Python")
    data = link_images(sample_dir, tmp_path / "images", 12)
    h5 = tmp_path / "results" / "demo" / "activations" / "activations.h5"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "resstream.cli",
            "activations",
            "--data",
            str(data),
            "--out",
            str(h5),
            "--weights",
            "random:0",
            "--device",
            "cpu",
            "--workers",
            "0",
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )

    out = run_python(one_fv, tmp_path)
    assert (tmp_path / "fv-layer2.1.bn2" / "unit0005.png").is_file() and (
        tmp_path / "fv-layer2.1.bn2" / "fv.h5"
    ).is_file()
    assert out.rstrip().endswith("(1, 3, 224, 224)"), out

    out = run_python(activations, tmp_path)
    printed = [line.split()[0] for line in out.strip().splitlines()[:-1]]  # 9 images, then "Name: 5, ..."
    with h5py.File(h5, "r") as f:  # the pass's own top-9 of that unit
        paths = f["images/path"].asstr()[:]
        assert printed == [paths[i] for i in f["topk/layer4.1.bn2/index"][5]], out

    out = run_python(unit, tmp_path)
    assert out.startswith("{'M': ") and "'mix_group': " in out and "'pass_all': " in out, out
    assert sorted(p.name for p in (tmp_path / "unit-2.1-5").iterdir()) == ["B", "I", "O"]


def test_reading_the_outputs_snippet_runs_on_a_finished_run(tmp_path, shared_run):
    """The tutorial's snippet, with the demo's paths, over a finished run placed where make demo puts it."""
    (code,) = snippets("tutorial.md", "Reading the outputs")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "demo").symlink_to(shared_run.results)
    run_python(code + "\nprint(len(table), acts.shape, len(paths), sorted(summary['blocks']))", tmp_path)


def test_every_config_key_is_in_the_reference_with_a_description():
    schema = yaml.safe_load(reference.SCHEMA.read_text())
    keys = reference.schema_keys(schema)
    page = reference.config_reference(schema)
    assert len(keys) > 40 and {"fv.steps", "analysis.mix_factor", "compare.runs"} <= {k.key for k in keys}
    undocumented = [k.key for k in keys if not k.schema.get("description")]
    assert not undocumented, f"schema keys without a description (the reference shows it): {undocumented}"
    for key in keys:
        (row,) = [line for line in page.splitlines() if line.startswith(f"| `{key.key}` |")]
        assert f"`{json.dumps(key.schema.get('default'))}`" in row, row
    assert "| `fv.steps` | integer | `2560` | ≥ 1; ≤ 100000 |" in page and "`fv: {steps: 2560}`" in page


def test_a_new_schema_key_shows_up_in_the_reference():
    schema = yaml.safe_load(reference.SCHEMA.read_text())
    schema["properties"]["fv"]["properties"]["brand_new"] = {
        "type": "number",
        "minimum": 0,
        "maximum": 1,
        "default": 0.5,
        "description": "a new knob",
    }
    assert (
        "| `fv.brand_new` | number | `0.5` | ≥ 0; ≤ 1 | a new knob | `fv: {brand_new: 0.5}` |"
        in reference.config_reference(schema)
    )


def test_error_list_holds_the_codes_messages():
    messages = reference.error_messages()
    templates = [m.template for m in messages]
    # the ones users meet most (each a message of the code, found by the generator)
    for common in (
        "dataset.path is not set. Fix:",
        "are not in torch's hub cache",
        "the demo's sample is not fetched yet",
        "model.device is 'cuda' but no CUDA device is visible",
        "study.blocks: unknown block",
        "model.weights checkpoint {path} does not exist",
        "model.arch '{arch}' {why}. Fix:",
    ):
        assert any(common in t for t in templates), common
    assert len(messages) > 60 and all(m.where.startswith("resstream/") for m in messages)
    assert not any(t.startswith("How a Snakemake job") for t in templates)  # docstrings are not messages


def test_every_error_note_explains_a_message_of_the_code():
    templates = [m.template for m in reference.error_messages()]
    notes = reference.error_notes()
    stale = [key for key in notes if not any(key in t for t in templates)]
    assert not stale, f"docs/_hooks/error_notes.yaml explains messages the code no longer has: {stale}"
    page = reference.errors_reference()
    assert "**`resstream: dataset.path is not set`**" in page and "Fix: point it at an image folder" in page


def test_error_list_holds_the_lines_a_run_says_and_their_notes():
    """Lines that say what a run does (a lock taken over, Ctrl-C's stopping) are listed, without a
    fix, each with its hand note; so are the lock, damaged-file and weights lines with theirs."""
    page = reference.errors_reference()
    entries = {block.split("`**")[0]: block for block in page.split("- **`resstream: ")[1:]}
    said = [e for problem, e in entries.items() if problem.startswith(("note: results folder", "stopping: ending the"))]
    assert len(said) == 2 and all("(says what the run does)" in e for e in said), said
    assert "lock is the ended run's too" in said[0] and "no --unlock is needed" in said[1]
    for problem, note in (
        ("results folder {results} is in use by another snakemake run", "Each run locks its results folder"),
        ("{path} is damaged ({why}); moved", "nothing downstream is removed"),
        ("model.weights checkpoint {where} holds non-finite weights", "training diverged"),
    ):
        (entry,) = [e for listed, e in entries.items() if listed.startswith(problem)]
        assert note in entry, (problem, entry)


def test_readme_first_screen_and_length():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 150, len(lines)
    first = "\n".join(lines[:25])
    assert "make demo" in first and "make test" in first and "![" in first and ".venv/bin/snakemake" in first
    for line in lines:  # every command line of the README runs an installed command from .venv or an activated one
        assert not re.match(r"^(snakemake|resstream) ", line) or "activate" in "\n".join(lines[: lines.index(line)]), (
            line
        )


@pytest.mark.parametrize("marker", ["configuration", "errors", "cli"])
def test_generated_parts_have_their_page(marker):
    holders = [p.name for p in DOCS.glob("*.md") if reference.MARKER.format(marker) in p.read_text()]
    assert len(holders) == 1, holders


def test_site_config_leaves_incoming_docs_out_and_lists_every_page():
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text().replace("!!python", "#"))
    assert "_incoming/" in config["exclude_docs"]
    listed = {next(iter(entry.values())) for entry in config["nav"]}
    assert listed == {p.name for p in DOCS.glob("*.md")}
