"""One module per HDF5 output writes and reads it: ``activations.h5`` (resstream/activations/store.py)
and ``fv.h5`` (resstream/fv/fv_file.py); everything else goes through them.  The damage check before
a run (resstream/workflow/damaged_outputs.py) opens any HDF5 output for its headers only."""

import ast

from resstream.base.code_fingerprint import PACKAGE_DIR

OPENERS = {"activations/store.py", "fv/fv_file.py", "workflow/damaged_outputs.py"}


def modules_opening_hdf5() -> set[str]:
    """Modules with a call ``h5py.File(...)`` (or ``File(...)`` imported from h5py)."""
    found = set()
    for path in PACKAGE_DIR.rglob("*.py"):
        tree = ast.parse(path.read_text())
        from_h5py = {
            a.asname or a.name
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module == "h5py"
            for a in n.names
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                if (
                    isinstance(f, ast.Attribute)
                    and f.attr == "File"
                    and isinstance(f.value, ast.Name)
                    and f.value.id == "h5py"
                    or isinstance(f, ast.Name)
                    and f.id in from_h5py
                    and f.id == "File"
                ):
                    found.add(str(path.relative_to(PACKAGE_DIR)))
    return found


def test_hdf5_outputs_are_opened_by_their_own_modules_only():
    assert modules_opening_hdf5() == OPENERS
