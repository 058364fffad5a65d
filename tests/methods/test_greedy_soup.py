"""search.average greedy (mixtune.mixup.repeated.greedy_soup): the K search models ranked on their own D_val, each
kept only when the soup's score on the pooled D_val splits does not drop; with one split, that split's model."""

from __future__ import annotations

import pytest
import torch

from mixtune.config import build_config
from mixtune.errors import MixtuneError
from mixtune.mixup.repeated import greedy_soup
from tests.methods.test_controls import finetune_start, set_search

POOLED = [0, 1, 2, 3, 4]


def scored(own: list[float], target: float):
    """A score: a member's own D_val score from `own` (its D_val is [k]), on the pooled splits -|w - target|."""
    calls = []

    def score(state, indices):
        calls.append(list(indices))
        if indices == POOLED:
            return -abs(float(state["w"]) - target)
        return own[indices[0]]

    return score, calls


def members(*values: float) -> list[dict[str, torch.Tensor]]:
    return [{"w": torch.tensor([v])} for v in values]


def test_a_member_is_kept_only_when_the_pooled_score_does_not_drop():
    # own ranking: w=2, w=10, w=4, w=0, w=3; on the pooled splits the best soup sits at 3
    values, own = (0.0, 10.0, 2.0, 4.0, 3.0), [0.1, 0.8, 0.9, 0.7, 0.05]
    score, _ = scored(own, target=3.0)
    soup, log = greedy_soup(members(*values), score, [[k] for k in range(5)])
    assert log["order"] == [2, 1, 3, 0, 4]
    # 2 alone: -1; +10 -> mean 6, -3: dropped; +4 -> mean 3, 0: kept; +0 -> mean 2, -1: dropped; +3 -> mean 3, 0: a tie, kept
    assert [t["kept"] for t in log["tried"]] == [False, True, False, True]
    assert log["kept"] == [2, 3, 4] and log["pooled_score"] == 0.0
    torch.testing.assert_close(soup["w"], torch.tensor([3.0]))


def test_one_split_gives_that_split_unchanged():
    member = {"w": torch.tensor([1.25, -3.5]), "b": torch.tensor([7.0])}
    score, calls = scored([0.3], target=0.0)
    soup, log = greedy_soup([member], score, [[0]])
    assert all(torch.equal(soup[k], member[k]) for k in member) and log["kept"] == [0] and calls == [[0]]


def test_soup_start_greedy_with_one_split_equals_the_uniform_average(tiny_bert_dir, make_run, monkeypatch):
    from transformers import AutoModelForSequenceClassification

    starts = {}
    for average in ("all", "greedy"):
        method, ctx = make_run("soup-start", n=24, seed=3, epochs=1)
        set_search(method, splits=1, epochs=1, inner_lr=1e-3, average=average)
        starts[average] = finetune_start(monkeypatch)
        method.fit(AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir), ctx)
    assert all(torch.equal(starts["greedy"][n], v) for n, v in starts["all"].items())


def test_soup_start_greedy_finetunes_from_the_mean_of_the_kept_members(tiny_model, make_run, monkeypatch):
    import mixtune.methods.soup_start as soup

    method, ctx = make_run("soup-start", n=40, seed=2, epochs=1, lr=1e-3)
    set_search(method, splits=3, epochs=2, inner_lr=5e-3, average="greedy")
    found, original = [], soup.inner_steps_only

    def member(model, *args, **kwargs):
        log = original(model, *args, **kwargs)
        found.append({n: p.detach().clone() for n, p in model.named_parameters()})
        return log

    monkeypatch.setattr(soup, "inner_steps_only", member)
    start = finetune_start(monkeypatch)
    method.fit(tiny_model, ctx)
    log = ctx.log["search"]["soup"]
    assert sorted(log["order"]) == [0, 1, 2] and log["kept"][0] == log["order"][0]
    assert log["own_scores"][log["order"][0]] == max(log["own_scores"])
    for name, value in start.items():
        expected = sum(found[k][name] for k in log["kept"]) / len(log["kept"])
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
    assert ctx.phase_times["search"] >= log["seconds"] > 0


def test_an_unknown_average_is_a_one_line_error():
    with pytest.raises(MixtuneError, match="choose one of all, alpha, greedy"):
        build_config({"search": {"average": "best"}})
