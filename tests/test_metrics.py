"""Known-answer tests of the open-set scores and metrics (hand-worked examples, scikit-learn as the oracle).

Package convention: scores are higher = more likely known; label -1 marks an unknown sample.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from difair.eval import metrics as M
from difair.eval import scores as S
from difair.nn import functional as DF

# --------------------------------------------------------------------------------------------- scores


def test_difair_min_distance_and_nearest_anchor() -> None:
    anchors = torch.tensor([[10.0, 0.0], [0.0, 10.0]])
    z = torch.tensor([[10.0, 0.0], [3.0, 4.0]])
    # z0: d = (0, sqrt(200)); z1: d = (sqrt(49 + 16) = sqrt(65), sqrt(9 + 36) = sqrt(45) = 6.7082039)
    score = S.difair_min_distance(z, anchors)
    assert score.tolist() == pytest.approx([0.0, -6.7082039], abs=1e-6)  # negated: higher = known
    assert score[0] > score[1]  # the sample on its anchor is the more "known" one
    assert S.nearest_anchor(z, anchors).tolist() == [0, 1]


def test_difair_class_activation_and_max_activation() -> None:
    # N=2, three classes: class sums (8, 5, 0); the largest single feature is 5 (class 1)
    z = torch.tensor([[4.0, 4.0, 5.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0, 2.0, 0.5]])
    assert S.difair_class_activation(z, 2).tolist() == [8.0, 2.5]
    assert S.max_activation(z).tolist() == [5.0, 2.0]


def test_msp_and_mls() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)], [2.0, 1.0]])
    # row0: softmax (1, 3)/4 -> 0.75; row1: (e^2, e)/(e^2 + e) = 1/(1 + e^-1) = 0.7310586
    assert S.msp(logits).tolist() == pytest.approx([0.75, 0.7310586], abs=1e-6)
    assert S.mls(logits).tolist() == pytest.approx([math.log(3.0), 2.0], abs=1e-6)
    three = torch.tensor([[2.0, 1.0, 0.0]])
    assert S.msp(three).item() == pytest.approx(math.exp(2) / (math.exp(2) + math.e + 1), abs=1e-6)


def test_cac_score_sign_and_value() -> None:
    anchors = DF.class_anchors(2, 1, 10.0)
    on_anchor = torch.tensor([[10.0, 0.0]])  # d = (0, sqrt(200)): gamma_0 = 0 -> score -0
    midway = torch.tensor(
        [[5.0, 5.0]]
    )  # d = (sqrt(50), sqrt(50)): softmin 1/2 -> gamma = sqrt(50)/2 = 3.5355339
    s = S.cac_score(torch.cat([on_anchor, midway]), anchors)
    assert s.tolist() == pytest.approx([0.0, -3.5355339], abs=1e-6)
    assert s[0] > s[1]


# --------------------------------------------------------------------------------------------- accuracy


def test_closed_set_accuracy_ignores_unknowns() -> None:
    # knowns: (0,0) ok, (1,1) ok, (2,1) wrong, (2,2) ok -> 3/4; the unknown's prediction does not count
    assert M.closed_set_accuracy([0, 1, 2, 2, 5], [0, 1, 1, 2, -1]) == 0.75
    assert M.closed_set_accuracy(torch.tensor([0, 1]), torch.tensor([0, 0])) == 0.5
    with pytest.raises(ValueError):
        M.closed_set_accuracy([0, 1], [-1, -1])


# --------------------------------------------------------------------------------------------- AUROC

# 5 samples: known scores 0.9, 0.8, 0.1; unknown scores 0.8, 0.3.
_S5 = np.array([0.9, 0.8, 0.8, 0.3, 0.1])
_L5 = np.array([0, 1, -1, -1, 2])


def test_auroc_hand_worked() -> None:
    # known-unknown pairs: (.9,.8)=1 (.9,.3)=1 (.8,.8)=1/2 (.8,.3)=1 (.1,.8)=0 (.1,.3)=0 -> 3.5/6
    assert M.auroc(_S5, _L5) == pytest.approx(3.5 / 6)


def test_auroc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(-1, 3, size=300)
    scores = rng.integers(0, 5, size=300).astype(float) + (labels >= 0) * 0.7  # many ties
    expected = roc_auc_score((labels >= 0).astype(int), scores)
    assert M.auroc(scores, labels) == pytest.approx(expected, abs=1e-12)
    assert M.auroc(torch.tensor(scores), torch.tensor(labels)) == pytest.approx(expected, abs=1e-12)


def test_auroc_sign_convention() -> None:
    rng = np.random.default_rng(1)
    labels = np.where(rng.random(200) < 0.4, -1, 0)
    scores = rng.normal(size=200) + (labels == 0)
    a = M.auroc(scores, labels)
    assert a > 0.6  # knowns score higher: known is the positive class
    assert M.auroc(-scores, labels) == pytest.approx(1 - a, abs=1e-12)


def test_auroc_large_magnitude_scores() -> None:
    # 1e6 + small differences: a sigmoid saturates to 1 for all of them and gives 0.5; ranks give 1.0.
    known = 1e6 + np.array([3e-3, 4e-3])
    unknown = 1e6 + np.array([1e-3, 2e-3])
    scores = np.r_[known, unknown]
    labels = np.array([0, 1, -1, -1])
    assert M.auroc(scores, labels) == 1.0
    # float64 tensors must not be rounded to float32 (spacing 0.0625 at 1e6), which would tie every score
    assert M.auroc(torch.tensor(scores, dtype=torch.float64), torch.tensor(labels)) == 1.0
    assert M.auroc(-scores, labels) == 0.0
    assert M.auroc(np.r_[1e6 + 1, -1e6, 1e6, -1e6 - 1], labels) == 0.75  # 1 + 1 + 0 + 1 over 4 pairs


# --------------------------------------------------------------------------------------------- AUPR

# Ranked by score: 4 known, 3 unknown, 2 unknown, 1 known.
_S4 = np.array([4.0, 3.0, 2.0, 1.0])
_L4 = np.array([0, -1, -1, 1])


def test_aupr_hand_worked() -> None:
    # in (known positive, high score first): K@1 P=1 R=.5; K@4 P=2/4 R=1 -> AP = .5*1 + .5*.5 = 0.75
    assert M.aupr_in(_S4, _L4) == pytest.approx(0.75)
    # out (unknown positive, low score first): order 1K, 2U, 3U, 4K: U@2 P=1/2, U@3 P=2/3 -> .5*.5 + .5*2/3
    assert M.aupr_out(_S4, _L4) == pytest.approx(0.25 + 1 / 3)


def test_aupr_matches_sklearn() -> None:
    rng = np.random.default_rng(2)
    labels = np.where(rng.random(250) < 0.3, -1, rng.integers(0, 4, size=250))
    scores = np.round(rng.normal(size=250) + 0.8 * (labels >= 0), 1)  # rounded: ties
    known = (labels >= 0).astype(int)
    assert M.aupr_in(scores, labels) == pytest.approx(average_precision_score(known, scores), abs=1e-12)
    assert M.aupr_out(scores, labels) == pytest.approx(average_precision_score(1 - known, -scores), abs=1e-12)
    # unknowns are the minority: AUPR-out differs from AUPR-in
    assert abs(M.aupr_in(scores, labels) - M.aupr_out(scores, labels)) > 0.05


# --------------------------------------------------------------------------------------------- FPR at TPR


def test_fpr_at_tpr_hand_worked() -> None:
    # knowns 5, 4, 3, 2, 1; unknowns 4.5, 3 (tied with a known), 0
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 4.5, 3.0, 0.0])
    labels = np.array([0, 0, 1, 1, 2, -1, -1, -1])
    assert M.fpr_at_tpr(scores, labels, 0.2) == 0.0  # t=5: accepts no unknown
    assert M.fpr_at_tpr(scores, labels, 0.4) == pytest.approx(1 / 3)  # t=4: accepts 4.5
    assert M.fpr_at_tpr(scores, labels, 0.5) == pytest.approx(
        2 / 3
    )  # needs 3 knowns: t=3 also accepts the tie
    assert M.fpr_at_tpr(scores, labels, 0.6) == pytest.approx(2 / 3)
    assert M.fpr_at_tpr(scores, labels, 0.8) == pytest.approx(2 / 3)  # t=2
    assert M.fpr_at_tpr(scores, labels, 1.0) == pytest.approx(2 / 3)  # t=1: 0 is still rejected
    assert M.fpr_at_tpr(scores, labels) == pytest.approx(2 / 3)  # default 0.95 -> all 5 knowns


def test_fpr_at_tpr_ties_move_together() -> None:
    # knowns 5, 3, 3, 1; unknowns 3, 2. TPR 0.5 needs 2 knowns: t=3 takes both tied knowns and the tied
    # unknown
    # (the tied unknown comes first, so breaking ties by position would wrongly reject it)
    scores = np.array([3.0, 5.0, 3.0, 3.0, 1.0, 2.0])
    labels = np.array([-1, 0, 0, 0, 0, -1])
    assert M.fpr_at_tpr(scores, labels, 0.5) == pytest.approx(0.5)
    assert M.fpr_at_tpr(scores, labels, 0.25) == 0.0
    assert M.fpr_at_tpr(scores, labels, 0.95) == 1.0


# --------------------------------------------------------------------------------------------- OSCR


def test_oscr_hand_worked_with_misclassified_knowns() -> None:
    # knowns (label, pred, score): (0,0,.9) ok, (1,0,.8) WRONG, (1,1,.6) ok, (2,2,.3) ok; unknowns .7, .4, .1
    scores = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.4, 0.1])
    preds = np.array([0, 0, 1, 2, 0, 1, 2])
    labels = np.array([0, 1, 1, 2, -1, -1, -1])
    # Thresholds high to low, (FPR, CCR) with CCR over 4 knowns and FPR over 3 unknowns:
    #   (0,0) -> .9: (0,.25) -> .8: (0,.25) -> .7: (1/3,.25) -> .6: (1/3,.5) -> .4: (2/3,.5) -> .3: (2/3,.75)
    #   -> .1: (1,.75). Area: 1/3*.25 + 1/3*.5 + 1/3*.75 = 0.5.
    assert M.oscr(scores, preds, labels) == pytest.approx(0.5)
    # AUROC of the same scores counts the wrong known's 3 pairs too: 9/12
    assert M.auroc(scores, labels) == pytest.approx(0.75)
    assert M.oscr(scores, preds, labels) <= M.closed_set_accuracy(preds, labels) * 1.0


def test_oscr_tie_between_known_and_unknown_counts_half() -> None:
    # one correct known and one unknown at the same score: the curve goes (0,0) -> (1,1) in one step: area 1/2
    assert M.oscr([0.5, 0.5], [0, 3], [0, -1]) == pytest.approx(0.5)
    # a tie with a misclassified known in the group: (0,0) -> (1, 1/2), area 1/4
    assert M.oscr([0.5, 0.5, 0.5], [0, 0, 1], [0, 1, -1]) == pytest.approx(0.25)


def test_oscr_equals_auroc_when_all_correct_with_ties() -> None:
    rng = np.random.default_rng(3)
    labels = np.where(rng.random(300) < 0.4, -1, rng.integers(0, 5, size=300))
    scores = rng.integers(0, 6, size=300).astype(float) + 0.5 * (labels >= 0)
    preds = np.where(labels >= 0, labels, 0)
    expected = roc_auc_score((labels >= 0).astype(int), scores)
    assert M.oscr(scores, preds, labels) == pytest.approx(expected, abs=1e-12)
    assert M.oscr(-scores, preds, labels) == pytest.approx(1 - expected, abs=1e-12)


def test_oscr_zero_when_all_wrong_and_bounded_by_accuracy() -> None:
    rng = np.random.default_rng(4)
    labels = np.where(rng.random(200) < 0.5, -1, rng.integers(0, 3, size=200))
    scores = rng.normal(size=200)
    wrong = np.where(labels >= 0, (labels + 1) % 3, 0)
    assert M.oscr(scores, wrong, labels) == 0.0
    preds = np.where(rng.random(200) < 0.7, labels, wrong)
    acc = M.closed_set_accuracy(preds, labels)
    assert 0.0 < M.oscr(scores, preds, labels) <= acc
    # a perfect score ordering reaches exactly the accuracy (the CCR plateau at FPR 0)
    perfect = (labels >= 0).astype(float)
    assert M.oscr(perfect, preds, labels) == pytest.approx(acc)


def test_oscr_accepts_tensors() -> None:
    scores = torch.tensor([0.9, 0.8, 0.6, 0.3, 0.7, 0.4, 0.1], dtype=torch.float64)
    preds = torch.tensor([0, 0, 1, 2, 0, 1, 2])
    labels = torch.tensor([0, 1, 1, 2, -1, -1, -1])
    assert M.oscr(scores, preds, labels) == pytest.approx(0.5)


# ----------------------------------------------------------------------------------------- errors, summary


@pytest.mark.parametrize("metric", [M.auroc, M.aupr_in, M.aupr_out, M.fpr_at_tpr])
def test_metrics_reject_bad_inputs(metric) -> None:
    with pytest.raises(ValueError):
        metric([0.1, np.nan, 0.3], [0, -1, -1])
    with pytest.raises(ValueError):
        metric([0.1, 0.2], [0, 1])  # no unknowns
    with pytest.raises(ValueError):
        metric([0.1, 0.2], [-1, -1])  # no knowns
    with pytest.raises(ValueError):
        metric([0.1, 0.2, 0.3], [0, -1])  # lengths differ


def test_oscr_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError):
        M.oscr([0.1, np.nan, 0.3], [0, 0, 0], [0, -1, -1])
    with pytest.raises(ValueError):
        M.oscr([0.1, np.inf], [0, 0], [0, -1])
    with pytest.raises(ValueError):
        M.oscr([0.1, 0.2], [0, 1], [0, 1])


def test_osr_metrics_summary() -> None:
    scores = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.4, 0.1])
    preds = np.array([0, 0, 1, 2, 0, 1, 2])
    labels = np.array([0, 1, 1, 2, -1, -1, -1])
    out = M.osr_metrics(scores, preds, labels)
    assert set(out) == {"closed_set_accuracy", "auroc", "oscr", "aupr_in", "aupr_out", "fpr95"}
    assert out["closed_set_accuracy"] == 0.75
    assert out["auroc"] == pytest.approx(0.75)
    assert out["oscr"] == pytest.approx(0.5)
    assert out["fpr95"] == pytest.approx(2 / 3)  # all 4 knowns need t=.3: accepts .7 and .4
