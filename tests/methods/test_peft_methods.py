"""LoRA, prefix and prompt tuning: the base weights never change, and the export reproduces the logits."""

import pytest
import torch
from peft import PeftModel
from torch import nn

from mixtune.errors import MixtuneError
from mixtune.methods.peft_methods import query_value_modules

PEFT_METHODS = ["lora", "prefix-tuning", "prompt-tuning"]


def eval_logits(model, loader):
    model.eval()
    with torch.no_grad():
        return torch.cat([model(**{k: v for k, v in batch.items() if k != "labels"}).logits for batch in loader])


@pytest.mark.parametrize("name", PEFT_METHODS)
def test_base_weights_never_change_and_the_added_parameters_train(name, make_run, tiny_model, train):
    method, ctx = make_run(name, epochs=2)
    base = [(p, p.detach().clone()) for p in tiny_model.parameters()]
    model = train(method, tiny_model, ctx)
    assert all(torch.equal(p, before) for p, before in base)
    base_ids = {id(p) for p, _ in base}
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trained and all(id(p) not in base_ids for _, p in trained)
    assert any("classifier" in n for n, _ in trained)  # the head trains, as a copy (modules_to_save)


@pytest.mark.parametrize("name", PEFT_METHODS)
def test_export_reproduces_the_trained_models_logits(name, make_run, tiny_model, train, tiny_tokenizer, tmp_path):
    method, ctx = make_run(name, lr=1e-2, epochs=1)
    model = train(method, tiny_model, ctx)
    loader = ctx.loader(shuffle=False)
    expected = eval_logits(model, loader)
    method.save(model, tmp_path, tiny_tokenizer)
    reloaded = type(method).load_saved(tmp_path)
    assert isinstance(reloaded, PeftModel) == (name != "lora")  # LoRA merged into a plain checkpoint
    torch.testing.assert_close(eval_logits(reloaded, loader), expected, atol=1e-5, rtol=1e-5)


def test_lora_targets_query_and_value_by_architecture():
    model = nn.ModuleDict({"attn": nn.ModuleDict({"q": nn.Linear(2, 2), "k": nn.Linear(2, 2), "v": nn.Linear(2, 2)})})
    assert query_value_modules(model) == ["q", "v"]
    with pytest.raises(MixtuneError, match="target_modules"):
        query_value_modules(nn.ModuleDict({"dense": nn.Linear(2, 2)}))


def test_adapter_without_its_base_model_is_a_clear_error(make_run, tiny_model, train, tiny_tokenizer, tmp_path):
    method, ctx = make_run("prompt-tuning", epochs=1)
    model = train(method, tiny_model, ctx)
    method.save(model, tmp_path, tiny_tokenizer)
    config = (tmp_path / "adapter_config.json").read_text()
    base = model.peft_config["default"].base_model_name_or_path
    (tmp_path / "adapter_config.json").write_text(config.replace(base, str(tmp_path / "gone")))
    with pytest.raises(MixtuneError, match="needs its base model"):
        type(method).load_saved(tmp_path)
