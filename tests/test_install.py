"""``pip install .`` (not editable) gives a package that finds its data: the wheel is built from a
copy of the sources, installed into a fresh virtual environment (its dependencies come from the
project's environment through a .pth file, so nothing is downloaded), and ``resstream info`` runs
there from a folder that is not the checkout."""

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

from helpers import REPO
from resstream.atlas.render import TEMPLATES

PACKAGE_DATA = (
    "resstream/schemas/config.schema.yaml",
    "resstream/manifests/imagenet-sample.sha256",
    "resstream/model/arch_tables.json",
    "resstream/model/timm_tables.json",
    "resstream/analysis/templates/scorecard_page.html.j2",
    "resstream/analysis/templates/scorecard.css",
    "resstream/atlas/templates/unit.html.j2",
    "resstream/atlas/static/atlas.css",
    "resstream/atlas/static/atlas.js",
)
# the installed package renders a unit page from its own templates (every template and static file it names)
# and finds the scorecard's
RENDER_ATLAS = """\
from resstream.atlas import content, render
pages = [render.environment().get_template(name) for name in render.TEMPLATES]
page = render.render("unit.html.j2", root="../", weights=None, block="1.1", c=0, unit={"channel": 0}, prev=None, next=1,
                     layers=dict(I="i", B="b", O="o"), pictures={r: {"fv": None, "top9": None} for r in content.ROLES},
                     top9_lists={}, dictionary_links=None)
static = [render.static_text(name) for name in render.STATIC]
from resstream.analysis import scorecard  # its page templates and stylesheet, package data too
print(len(pages), len(static), "random-weights-banner" in page, 'href="unit0001.html"' in page, scorecard.HTML_PAGE.name,
      ".v-reproduced" in scorecard.SCORECARD_CSS)
"""


def run(*args, cwd, env=None):
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, f"{' '.join(map(str, args))}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_wheel_installs_into_a_fresh_environment_and_finds_its_data(tmp_path):
    src = tmp_path / "src"  # a copy: building in the checkout would leave build/ and egg-info there
    shutil.copytree(REPO / "resstream", src / "resstream", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        tmp_path / "dist",
        src,
        cwd=tmp_path,
    )
    (wheel,) = (tmp_path / "dist").glob("resstream-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    for data in PACKAGE_DATA:
        assert data in names, data
    assert "Requires-Dist: torch<3,>=2.14" in metadata and "Requires-Dist: torch-lucent<0.2,>=0.1.8" in metadata

    env = tmp_path / "env"
    run(sys.executable, "-m", "venv", "--without-pip", env, cwd=tmp_path)
    env_python = env / "bin" / "python"
    env_site = Path(
        run(env_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).stdout.strip()
    )
    (env_site / "project_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        env_python,
        "install",
        "-q",
        "--no-deps",
        "--no-index",
        wheel,
        cwd=tmp_path,
    )

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    where = run(
        env_python, "-c", "import resstream; print(resstream.__file__)", cwd=elsewhere, env=clean
    ).stdout.strip()
    assert Path(where).is_relative_to(env_site), where  # the installed copy, not the checkout
    info = run(env / "bin" / "resstream", "info", "resnet18", cwd=elsewhere, env=clean).stdout.splitlines()
    assert info[0] == "resnet18: 8 blocks; studied by default: 1.1, 2.0, 2.1, 3.0, 3.1, 4.0, 4.1"
    assert [line.split()[0] for line in info[2:]] == ["1.0", "1.1", "2.0", "2.1", "3.0", "3.1", "4.0", "4.1"]
    timm_info = run(env / "bin" / "resstream", "info", "timm:resnet50.a1_in1k", cwd=elsewhere, env=clean).stdout
    assert timm_info.startswith("timm:resnet50.a1_in1k: 16 blocks;")  # from the installed timm tables
    count = run(
        env_python,
        "-c",
        "from resstream.data.sample import load_manifest; print(len(load_manifest()))",
        cwd=elsewhere,
        env=clean,
    )
    assert count.stdout == "1000\n"
    atlas = run(env_python, "-c", RENDER_ATLAS, cwd=elsewhere, env=clean)
    assert atlas.stdout == f"{len(TEMPLATES)} 2 True True scorecard_page.html.j2 True\n"
    assert list(elsewhere.iterdir()) == []
