"""The README's "Use from Python" snippets run exactly as printed, each in its own interpreter, in a
folder laid out like a checkout after ``make demo`` (its activations file made here by the
``resstream activations`` command over a few generated images)."""

import re
import subprocess
import sys

import h5py

from helpers import REPO
from helpers.workflow import link_images


def readme_snippets(section: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


def run_python(code: str, cwd) -> str:
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{code}\n---\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_use_from_python_snippets_run_as_printed(tmp_path, sample_dir):
    one_fv, activations, unit = readme_snippets("Use from Python")
    data = link_images(sample_dir, tmp_path / "images", 12)
    h5 = tmp_path / "results" / "demo" / "activations" / "activations.h5"
    subprocess.run([sys.executable, "-m", "resstream.cli", "activations", "--data", str(data), "--out", str(h5),
                    "--weights", "random:0", "--device", "cpu", "--workers", "0"], check=True, capture_output=True, timeout=600)

    out = run_python(one_fv, tmp_path)
    assert (tmp_path / "fv-layer2.1.bn2" / "unit0005.png").is_file() and (tmp_path / "fv-layer2.1.bn2" / "fv.h5").is_file()
    assert out.rstrip().endswith("(1, 3, 224, 224)"), out

    out = run_python(activations, tmp_path)
    printed = [line.split()[0] for line in out.strip().splitlines()[:-1]]  # 9 images, then "Name: 5, ..."
    with h5py.File(h5, "r") as f:  # the pass's own top-9 of that unit
        paths = f["images/path"].asstr()[:]
        assert printed == [paths[i] for i in f["topk/layer4.1.bn2/index"][5]], out

    out = run_python(unit, tmp_path)
    assert out.startswith("{'M': ") and "'mix_group': " in out and "'pass_all': " in out, out
    assert sorted(p.name for p in (tmp_path / "unit-2.1-5").iterdir()) == ["B", "I", "O"]
