"""The batched evaluation (shared prefix, images decoded once) equals a plain loop: one image at a
time, the full lesioned network per condition, each image decoded again per condition and scale."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

from helpers.sample_images import picture
from resstream.ablation.evaluate import Condition, evaluate_lesions, image_batches
from resstream.ablation.lesion import Lesion, lesioned
from resstream.ablation.scales import Scale
from resstream.data.dataset import DatasetError, scan_image_folder
from resstream.model.blocks import block_lookup
from resstream.model.walk import model_blocks

NORM = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
SCALES = [Scale(1.0), Scale(1.3), Scale(0.8, 127)]


def author_view(path, scale):
    steps = [transforms.Resize(256)]
    if scale.factor > 1:
        steps += [transforms.CenterCrop(int(224 * (2 - scale.factor))), transforms.Resize(224)]
    else:
        steps += [transforms.CenterCrop(224)]
    if scale.factor < 1:
        steps += [transforms.Resize(180), transforms.Pad(22, fill=scale.fill)]
    return NORM(transforms.ToTensor()(transforms.Compose(steps)(Image.open(path).convert("RGB"))))[None]


@pytest.fixture(scope="module")
def labelled_folder(tmp_path_factory, random_model):
    """1000 class folders (ImageNet's count; most empty) holding 4 images: 3 in the class the plain
    network predicts for them, 1 in the next class, so the accuracies are neither 0 nor 1."""
    model = random_model[0]
    root = tmp_path_factory.mktemp("val")
    rng = np.random.default_rng(3)
    for k in range(1000):
        (root / f"n{k:08d}").mkdir()
    for i in range(4):
        img = picture(rng, 300, 260)
        img.save(root / "tmp.png")
        with torch.no_grad():
            predicted = int(model(author_view(root / "tmp.png", SCALES[0])).argmax())
        (root / "tmp.png").rename(root / f"n{(predicted + (i >= 3)) % 1000:08d}" / f"img{i}.png")
    return root


def conditions():
    return {
        "1.1": [
            Condition("list", "mean", -1, Lesion("1.1", "O", (1, 5, 9, 33), (0.3, 0.1, 0.0, 0.7))),
            Condition("random:list", "zero", 0, Lesion("1.1", "O", tuple(range(0, 64, 2)), (0.0,) * 32)),
        ],
        "2.0": [
            Condition("list", "mean", -1, Lesion("2.0", "I", tuple(range(40)), (0.2,) * 40)),
            Condition("list", "mean", -1, Lesion("2.0", "B", tuple(range(40)), (0.2,) * 40)),
        ],
    }


def plain_loop(model, blocks, root, records, conds):
    rows = {}
    for scale in SCALES:
        plain = {rec.path: F.log_softmax(model(author_view(root / rec.path, scale)).double(), dim=1) for rec in records}
        for name, group in [("", [None])] + list(conds.items()):
            for cond in group:
                correct, kl = 0, 0.0
                for rec in records:
                    x = author_view(root / rec.path, scale)
                    if cond is None:
                        logits = model(x)
                    else:
                        with lesioned(model, block_lookup(blocks, name), cond.lesion):
                            logits = model(x)
                    correct += int(logits.argmax()) == rec.class_id
                    kl += float(
                        (plain[rec.path].exp() * (plain[rec.path] - F.log_softmax(logits.double(), dim=1))).sum()
                    )
                rows[(name, cond, scale.factor)] = (100 * correct / len(records), kl / len(records))
    return rows


def test_batched_accuracies_equal_a_plain_loop(labelled_folder, random_model):
    model = random_model[0]
    blocks = model_blocks(model)
    records = scan_image_folder(labelled_folder)
    conds = conditions()
    got = evaluate_lesions(model, blocks, conds, image_batches(labelled_folder, records, SCALES, 4, 0), SCALES, "cpu")
    with torch.no_grad():
        expected = plain_loop(model, blocks, labelled_folder, records, conds)
    assert len(got) == len(expected) == 15
    by_key = {}
    for row in got:
        cond = None
        if row["set"] != "none":
            cond = next(
                c
                for c in conds[row["block"]]
                if (c.set, c.kind, c.trial, c.lesion.path) == (row["set"], row["kind"], row["trial"], row["path"])
            )
        by_key[(row["block"], cond, row["scale"])] = row
        assert row["n"] == 4
    for key, (accuracy, kl) in expected.items():
        assert by_key[key]["accuracy"] == pytest.approx(accuracy, abs=1e-9)
        assert by_key[key]["kl"] == pytest.approx(kl, rel=1e-3, abs=1e-7)
    plain_unscaled = by_key[("", None, 1.0)]
    assert plain_unscaled["accuracy"] == pytest.approx(100 * 3 / 4) and plain_unscaled["kl"] == 0
    assert any(r["kl"] > 1e-4 for r in got)


def test_unlabelled_images_are_refused(tmp_path):
    picture(np.random.default_rng(0), 300, 260).save(tmp_path / "loose.png")
    with pytest.raises(DatasetError, match="has images outside class folders.*prepare-imagenet-val"):
        image_batches(tmp_path, scan_image_folder(tmp_path), SCALES, 2, 0)
