"""The config files of a snakemake command line, checked by the workflow's profile before Snakemake
reads them: a misspelt name or broken YAML ends with one line naming the file, not a traceback."""

import pytest

from helpers.workflow import one_line, smk
from resstream.base.errors import ConfigError
from resstream.workflow.command_line import check_configfile, configfiles_named


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["-n", "--configfile", "a.yaml"], ["a.yaml"]),
        (["--configfiles", "a.yaml", "b.yaml", "--cores", "2"], ["a.yaml", "b.yaml"]),
        (["--configfile=a.yaml", "all"], ["a.yaml"]),
        (["--cores", "2", "all"], []),
    ],
)
def test_the_config_files_of_a_command_line(argv, expected):
    assert configfiles_named(argv) == expected


def test_a_misspelt_config_file_is_named_with_the_closest_one(tmp_path):
    (tmp_path / "demo.yaml").write_text("demo: true\n")
    with pytest.raises(ConfigError) as error:
        check_configfile(str(tmp_path / "demo.yml"))
    assert (
        str(error.value)
        == f"config file {tmp_path}/demo.yml (given to --configfile) does not exist; did you mean {tmp_path}/demo.yaml?"
    )


def test_a_config_file_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=f"config file {path} holds a list, not keys and values"):
        check_configfile(str(path))
    path.write_text("model: {arch: resnet18}\n")
    check_configfile(str(path))  # a mapping passes


def test_snakemake_with_a_misspelt_configfile_prints_one_line():
    proc = smk("-n", "--configfile", "demo.yml", check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert (
        one_line(proc)
        == "resstream: config file demo.yml (given to --configfile) does not exist; did you mean demo.yaml?"
    )


def test_snakemake_with_broken_yaml_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("model:\n  arch: resnet18\n bad: [\n")
    proc = smk("-n", "--configfile", path, check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert one_line(proc).startswith(f"resstream: config file {path} is not valid YAML: line 3, column 2: ")
