"""linear-probe, lp-ft, wise-ft, bitfit: each one's defining behaviour on a tiny random BERT."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, Ridge

from mixtune.heads import classifier_inputs, is_head_parameter
from mixtune.probe import fit_linear


def scaled(features: np.ndarray) -> np.ndarray:
    """Standardised, as the probe does (no feature here is below its scale floor)."""
    return (features - features.mean(axis=0)) / features.std(axis=0)


def test_fit_linear_folds_centring_and_scale_into_the_weights():
    rng = np.random.default_rng(0)
    features = rng.normal(3.0, [0.4, 5.0, 1.0], size=(60, 3))
    labels = (features[:, 0] > 3.0).astype(int)
    weight, bias = fit_linear(features, labels, 1.0, regression=False, num_labels=2)
    reference = LogisticRegression(C=1.0, max_iter=2000).fit(scaled(features), labels)
    logits = features @ weight.T + bias
    assert np.allclose(logits[:, 1] - logits[:, 0], reference.decision_function(scaled(features)))
    targets = features @ [1.0, -2.0, 0.5]
    weight, bias = fit_linear(features, targets, 10.0, regression=True, num_labels=1)
    ridge = Ridge(alpha=0.1).fit(scaled(features), targets)
    assert np.allclose(features @ weight[0] + bias[0], ridge.predict(scaled(features)))


def test_a_constant_feature_gets_no_huge_weight():
    rng = np.random.default_rng(0)
    features = np.column_stack([rng.normal(size=80), np.full(80, 0.3) + 1e-9 * rng.normal(size=80)])
    labels = (features[:, 0] > 0).astype(int)
    weight, _ = fit_linear(features, labels, 1000.0, regression=False, num_labels=2)
    assert np.abs(weight).max() < 1e3


def test_linear_probe_keeps_the_encoder_and_chooses_the_regularisation_on_dev(tiny_model, make_run):
    method, ctx = make_run("linear-probe", n=40, method_args={"grid": [0.01, 1.0, 100.0]})
    dev_calls = []
    ctx.evaluate_dev = lambda model: dev_calls.append(model.classifier.weight.clone()) or [10.0, 30.0, 20.0][len(dev_calls) - 1]
    encoder = {n: p.clone() for n, p in tiny_model.named_parameters() if not is_head_parameter(n)}
    model = method.fit(tiny_model, ctx)
    assert ctx.log["probe"]["chosen"] == 1.0 and len(dev_calls) == 3
    assert all(torch.equal(p, encoder[n]) for n, p in model.named_parameters() if n in encoder)
    features = classifier_inputs(model, ctx.loader(shuffle=False)).double().numpy()
    labels = np.array([f["labels"] for f in ctx.features])
    reference = LogisticRegression(C=1.0, max_iter=2000).fit(scaled(features), labels)
    model.eval()
    logits = torch.cat([model(**{k: v for k, v in b.items() if k != "labels"}).logits for b in ctx.loader(shuffle=False)])
    assert (logits.argmax(-1).numpy() == reference.predict(scaled(features))).all()


def test_lp_ft_starts_the_finetune_from_the_probe_head(tiny_model, make_run, monkeypatch):
    import mixtune.methods.base as base

    method, ctx = make_run("lp-ft", n=24, epochs=1, lr=1e-3)
    seen = {}
    original = base.train_loop

    def spy(model, *args, **kwargs):
        seen["head"] = model.classifier.weight.detach().clone()
        return original(model, *args, **kwargs)

    initial = tiny_model.classifier.weight.detach().clone()
    monkeypatch.setattr(base, "train_loop", spy)
    method.fit(tiny_model, ctx)
    assert "probe" in ctx.log and not torch.equal(seen["head"], initial)
    assert not torch.equal(tiny_model.classifier.weight, seen["head"])  # then everything trains


def test_wise_ft_mixes_the_encoder_and_keeps_the_finetuned_head(tiny_model, make_run):
    method, ctx = make_run("wise-ft", n=24, epochs=1, lr=1e-2, method_args={"mixing": [0.0, 0.5, 1.0]})
    pretrained = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    snapshots = []

    def dev(model):  # the loop keeps its last step (select last) unscored; dev scores the three mixing values
        snapshots.append({n: p.detach().clone() for n, p in model.named_parameters()})
        return [0.0, 5.0, 1.0][len(snapshots) - 1]

    ctx.evaluate_dev = dev
    method.fit(tiny_model, ctx)
    assert len(snapshots) == 3
    mixes = snapshots[-3:]
    name = "bert.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(mixes[0][name], pretrained[name])
    assert torch.allclose(mixes[1][name], (pretrained[name] + mixes[2][name]) / 2, atol=1e-6)
    assert all(torch.equal(m["classifier.weight"], mixes[2]["classifier.weight"]) for m in mixes)
    assert ctx.log["wise_ft"]["chosen"] == 0.5
    assert torch.allclose(tiny_model.get_parameter(name), mixes[1][name])


def test_bitfit_moves_only_biases_and_the_head(tiny_model, make_run, train):
    method, ctx = make_run("bitfit", n=24, epochs=1)
    before = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    model = train(method, tiny_model, ctx)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.endswith(".bias") or is_head_parameter(n) for n in changed)
    assert any("encoder" in n and n.endswith(".bias") for n in changed)
