"""Item 7 of the timm support: torchvision's resnet18 weights copied into ``timm:resnet18`` (the
same architecture, the same parameter names) give the same FVs, dataset activations and M through
the library's entry points (resstream/api.py), on tiny inputs."""

import shutil

import h5py
import numpy as np
import pytest
import torch

from helpers.sample_images import make_image_folder
from resstream import api

# the tag whose pretrained_cfg preprocessing is torchvision's (timm:resnet18's default, a1_in1k, reads
# images bicubic with crop_pct 0.95)
TV, TIMM = "resnet18", "timm:resnet18.tv_in1k"
I_LAYER, B_LAYER = "layer2.0.prerelu_out", "layer2.1.bn2"  # I and B of block 2.1


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A random torchvision resnet18 (seed 0, BN statistics randomised so that no layer is trivial)."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    path = tmp_path_factory.mktemp("weights") / "resnet18_random.pth"
    torch.save({"state_dict": model.state_dict()}, path)
    return str(path)


def test_fvs_activations_and_m_agree_with_torchvision(checkpoint, tmp_path):
    def render(arch, layer):
        out = tmp_path / arch.replace(":", "_") / layer
        return api.render_fv(layer, [0], str(out), arch=arch, weights=checkpoint, checkpoint="any", steps=2)

    tv_b, timm_b = render(TV, B_LAYER), render(TIMM, B_LAYER)
    np.testing.assert_allclose(timm_b.images, tv_b.images, rtol=0, atol=1e-5)
    np.testing.assert_allclose(timm_b.curve, tv_b.curve, rtol=1e-5, atol=1e-5)
    render(TV, I_LAYER)  # the I stimulus both measure M from

    data = make_image_folder(tmp_path / "images", n_classes=4)
    files = {
        arch: api.extract_activations(
            str(data),
            str(tmp_path / f"{arch.replace(':', '_')}.h5"),
            arch=arch,
            weights=checkpoint,
            checkpoint="any",
            blocks=["2.1"],
            batch_size=2,
            workers=0,
            topk=2,
        )
        for arch in (TV, TIMM)
    }
    with h5py.File(files[TV]) as tv, h5py.File(files[TIMM]) as tm:
        names = []
        tv.visit(lambda n: names.append(n) if isinstance(tv[n], h5py.Dataset) else None)
        layers = [n for n in names if n.startswith("center/") or n.startswith("layers/")]
        assert layers, names
        for name in names:
            if tv[name].dtype.kind == "f":
                np.testing.assert_allclose(tm[name][()], tv[name][()], rtol=1e-5, atol=1e-5, err_msg=name)

    pngs = tmp_path / "pngs"  # the same images for both, with no fv.h5 beside them naming one model
    pngs.mkdir()
    for role, layer in (("I", I_LAYER), ("B", B_LAYER)):
        shutil.copy(tmp_path / "resnet18" / layer / "unit0000.png", pngs / f"{role}.png")
    rows = [
        api.unit_metrics(
            "2.1",
            0,
            {"I": str(pngs / "I.png"), "B": str(pngs / "B.png")},
            arch=arch,
            weights=checkpoint,
            checkpoint="any",
        )
        for arch in (TV, TIMM)
    ]
    for key in ("M_raw", "m", "n", "out_in", "out_mid", "in_in", "mid_mid", "in_mid"):
        assert rows[1][key] == pytest.approx(rows[0][key], rel=1e-5, abs=1e-6), key
