"""Crosscoder training: recovery of a known sparse dictionary, resume after a kill, the stored file."""

import json

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from resstream.dictionary.tokens import SyntheticTokens, sample_positions
from resstream.dictionary.train import load_dictionary, save_dictionary, train_crosscoder


def _config(**over):
    cfg = {"inputs": ["I"], "targets": ["I"], "dims": {"I": 16}, "n_latents": 48, "k": 3, "aux_k": 8,
           "dead_tokens": 2048, "seed": 3, "lr": 1e-2, "aux_coef": 1 / 32, "batch_size": 256, "refills": 20,
           "checkpoint_every": 5}
    cfg.update(over)
    return cfg


def _matched_cosines(atoms: torch.Tensor, decoder: torch.Tensor) -> np.ndarray:
    """Each true atom's cosine with the decoder row the Hungarian matching gives it."""
    d = decoder / decoder.norm(dim=1, keepdim=True)
    cos = (atoms @ d.T).numpy()
    rows, cols = linear_sum_assignment(-cos)
    return cos[rows, cols]


def test_training_recovers_a_known_sparse_dictionary():
    source = SyntheticTokens(n_atoms=24, dim=16, active=3, chunk_tokens=4096, seed=11)
    model = train_crosscoder(_config(), source)
    cos = _matched_cosines(source.atoms, model.W_dec["I"].detach())
    assert cos.min() >= 0.9, sorted(cos)[:5]


class _Killed(Exception):
    pass


def test_resume_after_kill_gives_the_same_dictionary(tmp_path):
    cfg = _config(refills=12, checkpoint_every=3)
    source = SyntheticTokens(n_atoms=24, dim=16, active=3, chunk_tokens=1024, seed=5)
    whole = train_crosscoder(cfg, source, str(tmp_path / "whole.pt"))

    def kill_after_seven(refill):
        if refill == 7:  # two refills past the checkpoint at 6: their work is lost and redone
            raise _Killed

    ckpt = str(tmp_path / "killed.pt")
    with pytest.raises(_Killed):
        train_crosscoder(cfg, source, ckpt, on_refill=kill_after_seven)
    assert torch.load(ckpt, weights_only=True)["refills_done"] == 6
    resumed = train_crosscoder(cfg, source, ckpt)
    for name, t in whole.state_dict().items():
        assert torch.equal(t, resumed.state_dict()[name]), name


def test_stored_dictionary_round_trips_with_config_and_weights_identity(tmp_path):
    cfg = _config(refills=1)
    model = train_crosscoder(cfg, SyntheticTokens(24, 16, 3, 512, seed=1))
    path = str(tmp_path / "d.safetensors")
    save_dictionary(path, model, cfg, {"source": "random:0"})
    back, back_cfg, identity = load_dictionary(path)
    assert back_cfg == json.loads(json.dumps(cfg)) and identity == {"source": "random:0"}
    assert torch.equal(back.W_enc, model.W_enc)


def test_sampled_positions_are_the_same_cells_of_every_role():
    i = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    out = sample_positions({"I": i, "B": -i}, 5, torch.Generator().manual_seed(0))
    assert out["I"].shape == (10, 3) and torch.equal(out["B"], -out["I"])
    # every token is one cell of one image: its channels are 16 apart, and the 5 cells of an image differ
    assert torch.all(out["I"][:, 1] - out["I"][:, 0] == 16)
    assert len(set(out["I"][:5, 0].tolist())) == 5
