"""Per-feature readings of a crosscoder against hand-made decoders and independent computations."""

import numpy as np
import torch

from resstream.analysis.metrics import MIX, OVERWRITE, SKIP
from resstream.dictionary.crosscoder import TopKCrosscoder
from resstream.dictionary.science import (
    TopImages,
    feature_groups,
    feature_mix_ratio,
    features_per_channel,
    map_activations,
    quality,
)


def _model(k=2):
    return TopKCrosscoder(
        ["I", "B"], ["I", "B", "O"], {"I": 2, "B": 2, "O": 2}, n_latents=4, k=k, aux_k=1, dead_tokens=100
    )


def _set_decoders(m, rows_i, rows_b, rows_o):
    with torch.no_grad():
        for t, rows in zip("IBO", (rows_i, rows_b, rows_o)):
            m.W_dec[t].copy_(torch.tensor(rows, dtype=torch.float32))


def test_feature_mix_ratio_on_a_hand_made_decoder():
    m = _model()
    # feature 0: |I| = 3, |B| = 1 -> M 3 (skip); 1: |I| = |B| = 5 -> 1 (mix);
    # 2: |I| = 0.5, |B| = 2 -> 0.25 (overwrite); 3: no B decoder -> 10 by rule (skip), clamped to 5
    _set_decoders(m, [[3, 0], [3, 4], [0, 0.5], [1, 0]], [[0, 1], [4, 3], [2, 0], [0, 0]], [[0, 0]] * 4)
    mr = feature_mix_ratio(m)
    assert np.allclose(mr.raw, [3.0, 1.0, 0.25, 10.0]) and np.allclose(mr.clamped, [3.0, 1.0, 0.25, 5.0])
    assert list(feature_groups(m, 1.5)) == [SKIP, MIX, OVERWRITE, SKIP]


def test_quality_against_numpy():
    torch.manual_seed(0)
    m = _model(k=1)
    tokens = {t: torch.randn(50, 2) for t in "IBO"}
    with torch.no_grad():
        recon, z = m.reconstruct(tokens)
    q = quality(m, [{t: v[:20] for t, v in tokens.items()}, {t: v[20:] for t, v in tokens.items()}], 0.5)
    for t in "IBO":
        x, r = tokens[t].double().numpy(), recon[t].double().numpy()
        assert np.isclose(q.fve[t], 1 - ((x - r) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
    firing = (z > 0).double().mean(0).numpy()
    assert np.allclose(q.firing, firing) and q.tokens == 50
    assert np.allclose(q.mean_activation, z.double().mean(0).numpy())
    assert np.isclose(q.l0, (z > 0).sum(1).double().mean())
    assert q.dead_share == np.mean(firing == 0) and q.dense_share == np.mean(firing > 0.5)


def test_features_per_channel_counts_the_features_that_make_a_channel():
    m = _model()
    # channel 0: contributions 4, 1, 0, 0 (one feature reaches 80%); channel 1: 1, 1, 1, 1 (four needed)
    _set_decoders(m, [[0, 0]] * 4, [[0, 0]] * 4, [[4, 1], [1, 1], [0, 1], [0, 1]])
    needed = features_per_channel(m, np.ones(4), "O", 0.8)
    assert list(needed) == [1, 4]


def test_top_images_keep_each_features_best_images_and_their_peak_cell():
    top = TopImages(n_latents=2, n=2)
    top.add(torch.tensor([[[1.0, 5.0], [0.0, 0.0]], [[2.0, 0.0], [3.0, 1.0]]]), images=[10, 11])
    top.add(torch.tensor([[[0.0, 4.0], [0.0, 9.0]]]), images=[12])
    assert top.image.tolist() == [[10, 12], [12, 11]]
    assert top.value.tolist() == [[5.0, 4.0], [9.0, 3.0]] and top.cell.tolist() == [[1, 1], [1, 0]]


def test_map_activations_equal_encoding_each_cell():
    torch.manual_seed(1)
    m = _model()
    maps = {"I": torch.randn(2, 2, 3, 3), "B": torch.randn(2, 2, 3, 3)}
    acts = map_activations(m, maps)
    cell = m.encode({"I": maps["I"][1, :, 2, 0][None], "B": maps["B"][1, :, 2, 0][None]})
    assert torch.allclose(acts[1, :, 6], cell[0])
