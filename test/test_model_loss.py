"""Bidirectional InfoNCE against hand-computed values; temperature clamping."""
import math

import pytest
import torch

from vljepa_ros.models.loss import InfoNCE, LossConfig


def _unit(rows):
    out = []
    for r in rows:
        n = math.sqrt(sum(v * v for v in r))
        out.append([v / n for v in r])
    return out


def _ce_row(logits_row, target):
    # -log softmax(logits_row)[target], written out
    return -logits_row[target] + math.log(sum(math.exp(v) for v in logits_row))


def _hand_infonce(pred, tgt, tau, ids=None):
    B = len(pred)
    sim = [[sum(a * b for a, b in zip(pred[i], tgt[j])) / tau for j in range(B)] for i in range(B)]
    if ids is not None:  # equal ids off the diagonal are not negatives -> dropped from the sums
        keep = [[i == j or ids[i] != ids[j] for j in range(B)] for i in range(B)]
    else:
        keep = [[True] * B for _ in range(B)]
    p2t = sum(_ce_row([sim[i][j] for j in range(B) if keep[i][j]], sum(keep[i][:i])) for i in range(B)) / B
    t2p = sum(_ce_row([sim[i][j] for i in range(B) if keep[i][j]], sum(keep[k][j] for k in range(j)))
              for j in range(B)) / B
    return 0.5 * (p2t + t2p)


PRED = _unit([[1.0, 0.0, 0.5], [0.2, 1.0, 0.0], [0.0, 0.3, 1.0]])
TGT = _unit([[0.9, 0.1, 0.4], [0.0, 1.0, 0.2], [0.5, 0.5, 0.5]])


def test_infonce_matches_hand_computation():
    loss_fn = InfoNCE(LossConfig(init_temperature=0.5))
    got = loss_fn(torch.tensor(PRED, dtype=torch.float64), torch.tensor(TGT, dtype=torch.float64))
    want = _hand_infonce(PRED, TGT, 0.5)
    assert got.item() == pytest.approx(want, rel=1e-6)
    # sanity of the hand formula on a case with a known answer: orthonormal, perfectly matched
    eye = [[1.0, 0.0], [0.0, 1.0]]
    assert _hand_infonce(eye, eye, 1.0) == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-12)


def test_infonce_masks_duplicate_targets():
    loss_fn = InfoNCE(LossConfig(init_temperature=0.25))
    pred = torch.tensor(PRED, dtype=torch.float64)
    tgt = torch.tensor(TGT, dtype=torch.float64)
    ids = [7, 3, 7]  # rows 0 and 2 share the same target text
    got = loss_fn(pred, tgt, torch.tensor(ids))
    assert got.item() == pytest.approx(_hand_infonce(PRED, TGT, 0.25, ids), rel=1e-6)
    assert got.item() != pytest.approx(loss_fn(pred, tgt).item(), rel=1e-3)  # masking changes the value
    # all-distinct ids == no ids
    assert loss_fn(pred, tgt, torch.tensor([0, 1, 2])).item() == pytest.approx(loss_fn(pred, tgt).item(), rel=1e-12)


def test_infonce_is_symmetric_and_gradients_flow():
    loss_fn = InfoNCE(LossConfig())
    pred = torch.tensor(PRED, requires_grad=True)
    tgt = torch.tensor(TGT, requires_grad=True)
    loss = loss_fn(pred, tgt)
    assert torch.allclose(loss, loss_fn(tgt, pred))  # bidirectional
    loss.backward()
    assert pred.grad.abs().sum() > 0 and tgt.grad.abs().sum() > 0
    assert loss_fn.log_temperature.grad is not None and loss_fn.log_temperature.grad != 0


def test_temperature_clamped():
    cfg = LossConfig(init_temperature=0.07, min_temperature=0.01, max_temperature=1.0)
    loss_fn = InfoNCE(cfg)
    assert loss_fn.temperature.item() == pytest.approx(0.07, rel=1e-6)
    with torch.no_grad():
        loss_fn.log_temperature.fill_(math.log(1e-5))
    assert loss_fn.temperature.item() == pytest.approx(0.01, rel=1e-6)
    with torch.no_grad():
        loss_fn.log_temperature.fill_(math.log(50.0))
    assert loss_fn.temperature.item() == pytest.approx(1.0, rel=1e-6)
    # the loss uses the clamped value
    pred, tgt = torch.tensor(PRED, dtype=torch.float64), torch.tensor(TGT, dtype=torch.float64)
    assert loss_fn(pred, tgt).item() == pytest.approx(_hand_infonce(PRED, TGT, 1.0), rel=1e-6)
    with pytest.raises(ValueError):
        InfoNCE(LossConfig(init_temperature=2.0))
    with pytest.raises(ValueError):
        InfoNCE(LossConfig(min_temperature=0.0))
