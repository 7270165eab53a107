"""The fine-tuning optimizer: a faster head and layer-wise learning-rate decay, found by name."""

from __future__ import annotations

import pytest
import torch

from scalecode_hf.encoder_model import apply_mode, load_encoder
from scalecode_hf.models import resolve
from scalecode_hf.optim import build_optimizer, learning_rate_scales


def rates_by_name(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, float]:
    rate_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    return {name: rate_of[id(p)] for name, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("pooling", ["model", "mean"])
def test_layers_learn_slower_the_lower_they_sit_and_the_head_at_its_own_rate(tiny_bert, pooling):
    model = load_encoder(resolve(str(tiny_bert)), pooling, 2, problem_type="regression")
    optimizer = build_optimizer(model, 1e-4, 0.01, head_learning_rate=1e-3, layer_decay=0.5)
    rates = rates_by_name(model, optimizer)
    assert len(rates) == sum(1 for p in model.parameters() if p.requires_grad)  # nothing left out

    def rate(fragment: str) -> float:
        (found,) = {r for name, r in rates.items() if fragment in name}
        return found

    # The tiny BERT has two layers: the top one at 0.5, the bottom at 0.25, the embeddings at 0.125.
    assert rate("layer.1.") == pytest.approx(0.5e-4)
    assert rate("layer.0.") == pytest.approx(0.25e-4)
    assert rate("embeddings.") == pytest.approx(0.125e-4)
    head = "classifier." if pooling == "model" else "head."
    assert rate(head) == pytest.approx(1e-3)
    # Biases and normalisation weights still get no weight decay, whatever their rate.
    decay_of = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    for name, parameter in model.named_parameters():
        expected = 0.0 if parameter.ndim < 2 or "norm" in name.lower() else 0.01
        assert decay_of[id(parameter)] == expected, name


def test_without_the_options_every_parameter_learns_at_one_rate(tiny_bert):
    model = load_encoder(resolve(str(tiny_bert)), "mean", 2, problem_type="regression")
    optimizer = build_optimizer(model, 3e-5, 0.01)
    assert {g["lr"] for g in optimizer.param_groups} == {3e-5}
    assert len(optimizer.param_groups) == 2  # with and without weight decay


def test_lora_names_are_recognised_through_peft_wrapping(tiny_bert):
    model = apply_mode(
        load_encoder(resolve(str(tiny_bert)), "mean", 2, problem_type="regression"), "lora", {}
    )
    rates = rates_by_name(model, build_optimizer(model, 1e-4, 0.0, head_learning_rate=1e-3, layer_decay=0.5))
    head_rates = {r for name, r in rates.items() if ".head." in f".{name}"}
    assert head_rates == {1e-3}
    lower = [r for name, r in rates.items() if "layer.0." in name]
    assert lower and lower == pytest.approx([0.25e-4] * len(lower))  # LoRA's matrices in layer 0


def test_layer_numbers_of_other_architectures():
    names = [
        "transformer.layer.0.ffn.lin1.weight",  # DistilBERT
        "transformer.layer.5.ffn.lin1.weight",
        "model.layers.2.self_attn.q_proj.weight",  # Llama, in the same list as a stranger
        "transformer.h.3.attn.c_attn.weight",  # GPT-2
        "embeddings.word_embeddings.weight",
        "score.weight",
    ]
    rates = learning_rate_scales(names, 1.0, None, 0.5)
    assert rates["transformer.layer.5.ffn.lin1.weight"] == 0.5  # the deepest of the numbers is the top
    assert rates["transformer.layer.0.ffn.lin1.weight"] == 0.5**6
    assert rates["embeddings.word_embeddings.weight"] == 0.5**7
    assert rates["score.weight"] == 1.0


def test_every_new_layer_of_a_models_own_classifier_learns_at_the_head_rate(tiny_bert, tmp_path):
    """DistilBERT's classification class adds a pre_classifier layer before its classifier, both
    newly initialised: both are the head, though only one is named like one."""
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertModel

    config = DistilBertConfig(vocab_size=64, dim=32, hidden_dim=64, n_layers=2, n_heads=2)
    DistilBertModel(config).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(tmp_path)
    model = load_encoder(resolve(str(tmp_path)), "model", 2, problem_type="single_label_classification")
    rates = rates_by_name(model, build_optimizer(model, 1e-4, 0.0, head_learning_rate=1e-3))
    new = {name for name, rate in rates.items() if rate == 1e-3}
    assert any(".pre_classifier." in name for name in new) and any(".classifier." in name for name in new)
    assert all(".distilbert." not in name for name in new)  # the pretrained body at its own rate
    assert {rate for name, rate in rates.items() if name not in new} == {1e-4}
