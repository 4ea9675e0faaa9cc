"""Crosscoder training: recovery of a known sparse dictionary, resume after a kill, the stored file."""

import json

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from resstream.dictionary.tokens import SyntheticTokens, sample_positions
from resstream.dictionary.train import load_dictionary, save_dictionary, train_crosscoder


def _config(**over):
    cfg = {
        "inputs": ["I"],
        "targets": ["I"],
        "dims": {"I": 16},
        "n_latents": 48,
        "k": 3,
        "aux_k": 8,
        "dead_tokens": 2048,
        "seed": 3,
        "lr": 1e-2,
        "aux_coef": 1 / 32,
        "batch_size": 256,
        "refills": 20,
        "checkpoint_every": 5,
    }
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


def test_image_tokens_are_the_same_chunk_every_call(tmp_path):
    from helpers.sample_images import make_image_folder
    from resstream.data.dataset import ImageFolderDataset
    from resstream.dictionary.tokens import ImageTokens, block_refs
    from resstream.model.blocks import role_tap
    from resstream.model.taps import block_taps
    from resstream.model.walk import model_blocks
    from resstream.model.weights import load_model

    net, _ = load_model("resnet18", "random:0", allow_download=False)
    net.eval()
    blocks = model_blocks(net)
    pictures = ImageFolderDataset(make_image_folder(tmp_path / "data", n_classes=3, seed=0), on_bad_image="fail")
    source = ImageTokens(
        net,
        blocks,
        block_refs(blocks, "1.1", ["I", "B", "O"], "pre"),
        pictures,
        positions=4,
        images_per_chunk=2,
        seed=7,
        device=torch.device("cpu"),
    )
    first, again, second = source.chunk(0), source.chunk(0), source.chunk(1)
    assert all(torch.equal(first[r], again[r]) for r in "IBO") and first["I"].shape == (8, 64)
    assert not torch.equal(first["I"], second["I"])
    # at every sampled cell of block 1.1 (no skip projection) O = B + the skip, relu(I): I is block
    # 1.0's output read before its ReLU (study.o_relu: pre)
    assert torch.allclose(first["O"], first["B"] + torch.relu(first["I"]), atol=1e-5)
    # the tokens are cells of the block's real maps: each I token is one column of some image's map
    x = torch.stack([pictures[i][0] for i in source.images_of(0)])
    with torch.inference_mode():
        i_map = block_taps(net, x, [role_tap(blocks, "1.1", "I", "pre")], blocks=blocks).popitem()[1]
    cells = i_map.flatten(2).permute(0, 2, 1).reshape(-1, 64)
    assert all(torch.isclose(cells, tok).all(1).any() for tok in first["I"])


def test_stage_crosscoder_recovers_a_known_dictionary_written_into_every_block():
    # one encoder reads the stage's first point (16 channels); its decoders write three more tensors
    # (two blocks' B and O); each atom has a part in every tensor, the codes are shared
    dims = {"2_0:I": 16, "2_0:B": 16, "2_0:O": 16, "2_1:B": 16, "2_1:O": 16}
    source = SyntheticTokens(n_atoms=24, dim=0, active=3, chunk_tokens=4096, seed=11, dims=dims)
    model = train_crosscoder(_config(inputs=["2_0:I"], targets=list(dims), dims=dims), source)
    decoder = torch.cat([model.W_dec[t].detach() for t in dims], dim=1)
    cos = _matched_cosines(source.atoms, decoder)
    assert cos.min() >= 0.9, sorted(cos)[:5]


def test_stage_readout_names_each_tensor_once():
    from resstream.dictionary.stage_scope import stage_groups, stage_readout
    from resstream.model.blocks import TapRef
    from resstream.model.walk import model_blocks
    from resstream.model.weights import load_model

    blocks = model_blocks(load_model("resnet18", "random:0", allow_download=False)[0])
    assert stage_groups(blocks, ["1.1", "2.0", "2.1", "4.1"]) == {
        "stage1": ["1.1"],
        "stage2": ["2.0", "2.1"],
        "stage4": ["4.1"],
    }
    refs, inputs, roles = stage_readout(blocks, ["2.0", "2.1"], ["I", "B"], "pre")
    # 2.1's I is 2.0's output before its ReLU (o_relu: pre): one tensor, decoded once
    assert list(refs) == ["2_0:I", "2_0:B", "2_0:O", "2_1:B", "2_1:O"] and roles["2.1"]["I"] == "2_0:O"
    assert refs["2_0:I"] == TapRef("2.0", "D") and inputs == ["2_0:I", "2_0:B"]
