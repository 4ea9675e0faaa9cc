"""The workflow's own config.yaml, broken: one line naming the file, the line and the problem,
through a real snakemake (the Snakefile reads it before Snakemake's ``configfile:`` does, whose
message names no line).  Files given with ``--configfile`` are read by Snakemake before the workflow
starts, so it cannot explain those (docs: the lines Snakemake prints then)."""

from helpers.configs import tiny_config_file
from helpers.workflow import copy_workflow, one_line, smk


def test_broken_config_yaml_names_its_line(tmp_path):
    workflow = copy_workflow(tmp_path / "workflow")
    # a list left open on line 3: YAML finds out on line 4
    (workflow / "config.yaml").write_text('results: results\nstudy:\n  blocks: ["1.1", "2.1"\nfv:\n  steps: 2\n')
    proc = smk("-n", "--cores", "1", "--configfile", tiny_config_file(tmp_path, tmp_path), cwd=workflow, check=False)
    assert proc.returncode == 1
    assert one_line(proc) == (
        "resstream: config.yaml is not valid YAML: line 4, column 1: expected ',' or ']', but got '<scalar>' "
        "(while parsing a flow sequence at line 3, column 11); fix the file there"
    )
    assert "Traceback" not in proc.stderr


def test_config_yaml_not_utf8(tmp_path):
    workflow = copy_workflow(tmp_path / "workflow")
    (workflow / "config.yaml").write_bytes(b"results: r\xe9sultats\n")
    proc = smk("-n", "--cores", "1", cwd=workflow, check=False)
    assert proc.returncode == 1
    assert one_line(proc) == "resstream: config.yaml is not UTF-8 text (byte 10); save it as UTF-8"
