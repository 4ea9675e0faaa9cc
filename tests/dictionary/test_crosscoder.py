"""The TopK crosscoder against hand computations: encoding, the per-vector scale, the dead-latent
auxiliary loss."""

import math

import torch

from resstream.dictionary.crosscoder import TopKCrosscoder, topk_relu


def _hand_model(k=2, aux_k=1, dead_tokens=3):
    """I and B of 2 channels each, 4 latents, decoders into I, B, O (2 channels each)."""
    m = TopKCrosscoder(
        ["I", "B"], ["I", "B", "O"], {"I": 2, "B": 2, "O": 2}, n_latents=4, k=k, aux_k=aux_k, dead_tokens=dead_tokens
    )
    with torch.no_grad():
        m.W_enc.copy_(torch.tensor([[1.0, 0, 0, -1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 2]]))
        m.b_enc.copy_(torch.tensor([0.0, 0.0, 0.5, 0.0]))
        for t in m.targets:
            m.W_dec[t].copy_(torch.eye(4, 2))
            m.b_dec[t].zero_()
    return m


def test_topk_relu_keeps_the_k_largest_positive():
    pre = torch.tensor([[3.0, -1.0, 2.0, 1.0], [-2.0, -1.0, 0.5, -3.0]])
    assert torch.equal(topk_relu(pre, 2), torch.tensor([[3.0, 0, 2.0, 0], [0, 0, 0.5, 0]]))


def test_encoding_matches_hand_computation():
    m = _hand_model()
    tokens = {"I": torch.tensor([[2.0, 0.0]]), "B": torch.tensor([[1.0, 1.0]])}
    # x = (2, 0, 1, 1), ||x|| = sqrt(6), s = sqrt(6)/2; x/s = (2, 0, 1, 1) * 2/sqrt(6)
    s = math.sqrt(6) / 2
    x = [2 / s, 0, 1 / s, 1 / s]
    pre = [x[0], x[1], x[2] + 0.5, -x[0] + 2 * x[3]]
    # the k=2 largest after ReLU: latents 0 (1.633) and 2 (1.316); latent 3 (0.816) is dropped
    expected = torch.tensor([[pre[0], 0, pre[2], 0]])
    assert torch.allclose(m.encode(tokens), expected, atol=1e-6)
    recon, _ = m.reconstruct(tokens)
    # decoders are eye(4, 2): latent 0 writes channel 0, latent 2 writes nothing
    assert torch.allclose(recon["O"], torch.tensor([[pre[0] * s, 0.0]]), atol=1e-6)


def test_aux_loss_uses_only_dead_latents():
    m = _hand_model(k=1, aux_k=1, dead_tokens=3)
    m.tokens_since_fired.copy_(torch.tensor([0, 10, 0, 2]))  # only latent 1 is dead (10 > 3)
    pre = torch.tensor([[1.0, 0.7, 0.2, 0.9]])
    residual = {t: torch.tensor([[0.0, 1.0]]) for t in m.targets}
    # z_aux = (0, 0.7, 0, 0) -> decodes to (0, 0.7) in every target; error (0, 0.3) -> mean 0.045 each
    aux = m.aux_loss(pre, residual, m.dead_latents())
    assert math.isclose(float(aux.detach()), 3 * 0.3**2 / 2, rel_tol=1e-6)
    m.tokens_since_fired.zero_()
    assert float(m.aux_loss(pre, residual, m.dead_latents())) == 0.0


def test_dead_counter_resets_when_a_latent_fires():
    m = _hand_model(k=1)
    m.count_firing(torch.tensor([[0.0, 2.0, 0, 0], [0.0, 1.0, 0, 0]]))
    assert m.tokens_since_fired.tolist() == [2, 0, 2, 2]


def test_decoder_rows_have_unit_norm_over_all_targets():
    m = TopKCrosscoder(["I", "B"], ["I", "B", "O"], {"I": 3, "B": 3, "O": 3}, 8, 2, 2, 10, seed=1)
    norm = sum(w.detach().square().sum(1) for w in m.W_dec.values())
    assert torch.allclose(norm, torch.ones(8), atol=1e-6)
