"""The causal-LM backend: prompts from the codebook, answers scored by likelihood, LoRA that learns."""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
import pytest
import torch

from scalecode import FitConfig, GoldSet, Task, TaskType
from scalecode.testing import BackendConformance, review_task, sample_gold, sample_task
from scalecode_hf.causal import CausalLMBackend, CausalScorer
from scalecode_hf.likelihood import score_answers
from scalecode_hf.options import TrainOptions
from scalecode_hf.testing import REVIEWS, label_likelihoods

SENTIMENT = review_task()


class TestCausalConformance(BackendConformance):
    backend_class = CausalLMBackend
    task_types: ClassVar[list] = [TaskType.CLASSIFICATION, TaskType.MULTILABEL, TaskType.REGRESSION]
    train_params: ClassVar[dict] = {"epochs": 1, "batch_size": 8, "max_steps": 2, "learning_rate": 1e-3}

    @pytest.fixture(autouse=True)
    def _tiny_model(self, tiny_llama, ray_local):
        # fp32, as on CPUs without bf16 (CI's): in bf16 a document's padding within a batch moves its
        # regression score by ~1e-4, past the kit's tolerance for reordered floating-point sums.
        type(self).params = {"model": str(tiny_llama), "max_length": 64, "precision": "fp32"}


def test_the_prompt_is_built_from_the_codebook(tiny_llama):
    from transformers import AutoTokenizer

    scorer = CausalScorer(
        SENTIMENT,
        AutoTokenizer.from_pretrained(tiny_llama),
        {"max_length": 64, "batch_size": 4, "few_shot": None},
    )
    [(conversation, answers)] = scorer.conversations("Great fun.")
    prompt = scorer.prompts.render(scorer.tokenizer, conversation)
    for piece in (
        "Classify the sentiment",
        "- positive: the reviewer liked the film",
        "A delight from start to finish.",
        "Dull, long and pointless.",
        "Great fun.",
    ):
        assert piece in prompt
    assert prompt.index("A delight") < prompt.index("Great fun.")  # examples come before the document
    assert answers == ["positive", "negative"]
    assert scorer.prompts.continuation(scorer.tokenizer, conversation, "positive") == "positive<|im_end|>\n"
    fewer = CausalScorer(SENTIMENT, scorer.tokenizer, {"max_length": 64, "batch_size": 4, "few_shot": 0})
    assert "A delight" not in fewer.prompts.render(fewer.tokenizer, fewer.conversations("x")[0][0])


def test_left_padded_batches_score_like_sequences_alone(tiny_llama):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    rng = np.random.default_rng(0)
    prompts = [rng.integers(10, 5000, n).tolist() for n in (5, 23, 11)]
    answers = [[rng.integers(10, 5000, k).tolist() for k in (1, 3)] for _ in prompts]
    batched = score_answers(model, prompts, answers, pad_id=0, batch_size=6, device=torch.device("cpu"))
    alone = [
        score_answers(model, [p], [a], pad_id=0, batch_size=1, device=torch.device("cpu"))[0]
        for p, a in zip(prompts, answers, strict=True)
    ]
    for got, expected in zip(batched, alone, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_label_likelihoods_are_probabilities_over_the_labels(smollm2):
    backend = CausalLMBackend(SENTIMENT, {"model": str(smollm2), "batch_size": 4})
    out = backend.predict_batch(REVIEWS)
    assert set(out.label) <= {"positive", "negative"}
    total = out.probabilities["positive"] + out.probabilities["negative"]
    np.testing.assert_allclose(total, 1.0, atol=1e-9)
    np.testing.assert_allclose(
        out.confidence, np.maximum(out.probabilities["positive"], out.probabilities["negative"])
    )
    # The 135M model reads tone from review words well enough to rank these four the right way round.
    positive = out.probabilities["positive"]
    assert min(positive[0], positive[2]) > max(positive[1], positive[3])


def test_scores_are_expected_ratings_and_label_sets_are_yes_no(smollm2):
    scored = CausalLMBackend(
        Task(type=TaskType.REGRESSION, instructions="Rate the sentiment.", scale={"min": -4, "max": 4}),
        {"model": str(smollm2)},
    )
    scores = np.asarray(scored.predict_batch(REVIEWS).score)
    assert np.all((scores >= -4) & (scores <= 4))
    tagged = CausalLMBackend(
        Task(type=TaskType.MULTILABEL, labels=["acting", "plot"]), {"model": str(smollm2)}
    )
    out = tagged.predict_batch(REVIEWS)
    assert all(set(labels) <= {"acting", "plot"} for labels in out.labels)
    assert all(0 <= p <= 1 for p in out.probabilities["plot"])


def test_a_regression_without_a_scale_is_refused(smollm2):
    with pytest.raises(ValueError, match=r"task\.scale"):
        CausalLMBackend.check(
            Task(type=TaskType.REGRESSION),
            CausalLMBackend.Params.model_validate({"model": str(smollm2)}),
            train=False,
        )


def test_a_causal_lm_trains_with_lora_unless_told_otherwise():
    from scalecode_hf.encoder import EncoderBackend

    assert CausalLMBackend.TrainParams.model_validate({}).mode == "lora"
    assert CausalLMBackend.TrainParams.model_validate({"mode": "full"}).mode == "full"
    assert EncoderBackend.TrainParams.model_validate({}).mode == "full"


def test_a_lora_step_lowers_the_loss(smollm2):
    from dataclasses import asdict

    from scalecode_hf.causal_recipe import CausalRecipe, training_rows
    from scalecode_hf.models import resolve

    task = sample_task(TaskType.CLASSIFICATION)
    gold = sample_gold(task, n=8)
    params = {"model": str(smollm2), "max_length": 64, "batch_size": 8, "few_shot": None, "threshold": 0.5}
    recipe = CausalRecipe(
        {
            "source": asdict(resolve(str(smollm2))),
            "mode": "lora",
            "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": None},
            "task": task.model_dump(mode="json"),
            "params": params,
            "validation": {},
        }
    )
    torch.manual_seed(0)
    model = recipe.build(torch.device("cpu"))
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert 0 < sum(p.numel() for p in trainable) < sum(p.numel() for p in model.parameters()) / 50
    ids, lengths = training_rows(recipe.scorer, GoldSet(task, gold.ids, gold.texts, gold.targets))
    batch = recipe.collate(
        {"input_ids": np.array(ids, dtype=object), "answer_length": np.array(lengths)}, torch.device("cpu")
    )
    optimizer = torch.optim.AdamW(trainable, lr=1e-3)
    before = recipe.loss(model, batch).item()
    for _ in range(3):
        loss = recipe.loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert recipe.loss(model, batch).item() < before


@pytest.mark.usefixtures("ray_local")
def test_a_refit_trains_the_causal_lm_on_every_training_document(tiny_llama, tmp_path):
    backend = CausalLMBackend(SENTIMENT, {"model": str(tiny_llama), "max_length": 64})
    options = TrainOptions(
        mode="lora", epochs=1, batch_size=8, max_steps=2, learning_rate=1e-3, validation_size=0.25, refit=True
    )
    report = backend.fit(
        sample_gold(SENTIMENT, n=40), None, FitConfig(output_dir=tmp_path / "state", options=options)
    )
    assert (report.n_train, report.n_eval) == (40, 10)
    assert "refit on all 40 training documents for 1 epoch(s)" in report.notes[0]
    history = json.loads((tmp_path / "state" / "training.json").read_text())
    assert [h.get("phase") for h in history] == [None, "refit"]
    coded = backend.predict_batch(REVIEWS)  # the refit model, merged and saved, loads and codes
    assert coded.label is not None and set(coded.label) <= {"positive", "negative"}


ADAPTER = "adapter_model.safetensors"


def test_lora_is_saved_as_an_adapter_over_the_base_model_unless_merged(tiny_llama, tmp_path, fake_training):
    from scalecode_hf.causal_recipe import CausalRecipe

    fake_training(CausalRecipe)
    params = {"model": str(tiny_llama), "max_length": 64}
    gold = sample_gold(SENTIMENT, n=16)
    for merge in (True, False):
        options = TrainOptions(mode="lora", epochs=1, merge_lora=merge)
        CausalLMBackend(SENTIMENT, params).fit(
            gold, None, FitConfig(output_dir=tmp_path / f"merge-{merge}", options=options)
        )
    merged, adapter = tmp_path / "merge-True" / "model", tmp_path / "merge-False" / "model"
    assert (merged / "config.json").is_file() and (merged / "model.safetensors").is_file()
    assert not (merged / "adapter_config.json").exists()
    assert (adapter / "adapter_config.json").is_file() and (adapter / ADAPTER).is_file()
    assert not list(adapter.glob("model*.safetensors"))  # the base's weights are not copied
    adapter_size, merged_size = (f.stat().st_size for f in (adapter / ADAPTER, merged / "model.safetensors"))
    assert adapter_size < merged_size / 4

    # Coding loads base + adapter, and the likelihoods are the merged model's.
    from_merged = label_likelihoods(CausalLMBackend(SENTIMENT, params, state_dir=merged.parent), REVIEWS)
    from_adapter = label_likelihoods(CausalLMBackend(SENTIMENT, params, state_dir=adapter.parent), REVIEWS)
    untrained = label_likelihoods(CausalLMBackend(SENTIMENT, params), REVIEWS)
    np.testing.assert_allclose(from_adapter, from_merged, rtol=1e-4, atol=1e-4)
    assert np.abs(from_adapter - untrained).max() > 1e-2  # the adapter is applied, not dropped
    prints = CausalLMBackend(SENTIMENT, params, state_dir=adapter.parent).fingerprint()
    assert str(adapter / ADAPTER) in prints
    assert str(tiny_llama.resolve() / "model.safetensors") in prints  # it codes with the base model too

    # An adapter only in pickle form is refused, never unpickled.
    (adapter / ADAPTER).rename(adapter / "adapter_model.bin")
    with pytest.raises(OSError, match="safetensors"):
        CausalLMBackend(SENTIMENT, params, state_dir=adapter.parent).load()


def test_a_moved_model_folder_is_the_same_training(tiny_llama, tmp_path, fake_training):
    """The checkpoint claim knows the model by its content, not by the folder it sits in."""
    import shutil

    import pyarrow as pa

    from scalecode.errors import ScalecodeError
    from scalecode_hf.causal_recipe import CausalRecipe
    from scalecode_hf.training import claim_checkpoints

    configs: list[dict] = []
    fake_training(CausalRecipe, configs)
    moved = shutil.copytree(tiny_llama, tmp_path / "moved" / "tiny-llama")
    gold = sample_gold(SENTIMENT, n=16)
    for model in (tiny_llama, moved):
        CausalLMBackend(SENTIMENT, {"model": str(model), "max_length": 64}).fit(
            gold, None, FitConfig(output_dir=tmp_path / "state", options=TrainOptions(mode="lora", epochs=1))
        )
    table = pa.table({"input_ids": [[1, 2], [3]]})
    folder = tmp_path / "checkpoints"
    claim_checkpoints(folder, {"seed": 0, "recipe_config": configs[0]}, table)
    claim_checkpoints(folder, {"seed": 0, "recipe_config": configs[1]}, table)
    with pytest.raises(ScalecodeError, match="other options"):
        claim_checkpoints(folder, {"seed": 0, "recipe_config": {**configs[1], "mode": "full"}}, table)


def test_fit_loads_the_weights_here_only_to_save_them(tiny_llama, tmp_path, fake_training, weight_loads):
    """Training runs on Ray Train's workers: the process that calls fit (a head node, perhaps without
    a GPU) loads the model once, to save it, and the trained one only when asked to code."""
    from scalecode_hf.causal_recipe import CausalRecipe

    fake_training(CausalRecipe)
    backend = CausalLMBackend(SENTIMENT, {"model": str(tiny_llama), "max_length": 64})
    options = TrainOptions(mode="lora", epochs=1)
    backend.fit(sample_gold(SENTIMENT, n=16), None, FitConfig(output_dir=tmp_path / "state", options=options))
    # One load stands for training (the fake trains here; Ray Train's workers would), one saves.
    assert len(weight_loads) == 2
    coded = backend.predict_batch(["a fine day", "a dreadful day"])  # the trained model, loaded now
    assert len(weight_loads) == 3
    assert coded.label is not None and len(coded.label) == 2


def test_a_coding_option_changed_between_runs_is_still_the_same_training(tiny_llama, tmp_path, fake_training):
    """batch_size, device and cpus may change between runs (operational): a killed training still
    resumes its checkpoints, and validation still scores in the batch size asked for."""
    import pyarrow as pa

    from scalecode_hf.causal_recipe import CausalRecipe
    from scalecode_hf.training import claim_checkpoints

    configs: list[dict] = []
    fake_training(CausalRecipe, configs)
    gold = sample_gold(SENTIMENT, n=16)
    base = {"model": str(tiny_llama), "max_length": 64}
    for changed in ({"batch_size": 8}, {"batch_size": 2, "device": "cpu", "cpus": 3}):
        CausalLMBackend(SENTIMENT, base | changed).fit(
            gold, None, FitConfig(output_dir=tmp_path / "state", options=TrainOptions(mode="lora", epochs=1))
        )
    folder, table = tmp_path / "checkpoints", pa.table({"input_ids": [[1, 2], [3]]})
    claim_checkpoints(folder, {"seed": 0, "recipe_config": configs[0]}, table)
    claim_checkpoints(folder, {"seed": 0, "recipe_config": configs[1]}, table)
    assert CausalRecipe(configs[1]).scorer.params["batch_size"] == 2


def test_weights_load_in_the_precision_asked_for_whatever_the_checkpoint_holds(tiny_llama, tmp_path):
    """precision fp32 means fp32 weights for a bf16 checkpoint; bf16 on a CPU means fp32 weights under
    bf16 autocast, as a merged LoRA model and its adapter both code (bf16 weights on a GPU:
    test_causal_review.py)."""
    import shutil

    from transformers import AutoModelForCausalLM

    folder = shutil.copytree(tiny_llama, tmp_path / "bf16")
    AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.bfloat16).save_pretrained(folder)
    backend = CausalLMBackend(SENTIMENT, {"model": str(folder), "max_length": 64, "precision": "fp32"})
    backend.load()
    assert {p.dtype for p in backend.model.parameters()} == {torch.float32}
    fp32 = shutil.copytree(tiny_llama, tmp_path / "fp32")
    AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).save_pretrained(fp32)
    backend = CausalLMBackend(SENTIMENT, {"model": str(fp32), "max_length": 64, "precision": "bf16"})
    backend.load()
    assert {p.dtype for p in backend.model.parameters()} == {torch.float32}
    coded = backend.predict_batch(["a fine day"])
    assert coded.probabilities is not None
    assert sum(p[0] for p in coded.probabilities.values()) == pytest.approx(1.0, abs=1e-3)


def test_an_evaluation_set_given_to_fit_is_the_validation_set(tiny_llama, tmp_path, fake_training):
    """fit(train, eval): every training document is trained on and eval validates; no second split."""
    from scalecode_hf.causal_recipe import CausalRecipe

    configs: list[dict] = []
    fake_training(CausalRecipe, configs)
    gold = sample_gold(SENTIMENT, n=20)
    train, held_out = gold.subset(range(16)), gold.subset(range(16, 20))
    backend = CausalLMBackend(SENTIMENT, {"model": str(tiny_llama), "max_length": 64})
    options = TrainOptions(mode="lora", epochs=1)
    report = backend.fit(train, held_out, FitConfig(output_dir=tmp_path / "state", options=options))
    assert (report.n_train, report.n_eval) == (16, 4)
    assert configs[0]["validation"]["texts"] == list(held_out.texts)


def test_a_label_too_rare_to_stratify_leaves_the_validation_split_unstratified(
    tiny_llama, tmp_path, fake_training
):
    from scalecode_hf.causal_recipe import CausalRecipe

    fake_training(CausalRecipe)
    gold = sample_gold(SENTIMENT, n=16)
    first = gold.targets.index("negative")
    gold = gold.subset([i for i, t in enumerate(gold.targets) if t != "negative" or i == first])
    backend = CausalLMBackend(SENTIMENT, {"model": str(tiny_llama), "max_length": 64})
    options = TrainOptions(mode="lora", epochs=1)
    report = backend.fit(gold, None, FitConfig(output_dir=tmp_path / "state", options=options))
    assert any("not stratified" in note for note in report.notes)


def test_precision_int8_is_refused_before_any_training(tiny_llama):
    params = CausalLMBackend.Params.model_validate({"model": str(tiny_llama), "precision": "int8"})
    with pytest.raises(ValueError, match="precision: int8"):
        CausalLMBackend.check(SENTIMENT, params, train=True)


def test_lora_adapts_every_linear_layer_of_an_architecture_peft_has_no_choice_for(tiny_llama, tmp_path):
    """peft names no default targets for Phi-3: LoRA then adapts its linear layers (not the output
    layer) rather than failing in a training worker without naming train.lora.target_modules."""
    from dataclasses import asdict

    from transformers import AutoTokenizer, Phi3Config, Phi3ForCausalLM

    from scalecode_hf.causal_recipe import CausalRecipe
    from scalecode_hf.models import resolve

    folder = tmp_path / "tiny-phi3"
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    tokenizer.save_pretrained(folder)
    config = Phi3Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=64,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    Phi3ForCausalLM(config).save_pretrained(folder)
    recipe = CausalRecipe(
        {
            "source": asdict(resolve(str(folder))),
            "mode": "lora",
            "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": None},
            "task": SENTIMENT.model_dump(mode="json"),
            "params": {"max_length": 64, "few_shot": None, "threshold": 0.5},
            "operational": {"batch_size": 4},
        }
    )
    trainable = [name for name, p in recipe.build(torch.device("cpu")).named_parameters() if p.requires_grad]
    assert any("qkv_proj.lora_A" in name for name in trainable)
    assert not any("lm_head" in name for name in trainable)


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0, 1, [i / 10 for i in range(11)]),  # not a yes/no answer
        (-1.5, 1.5, [round(-1.5 + 0.3 * i, 2) for i in range(11)]),  # never off the scale
        (1, 5, [1, 2, 3, 4, 5]),
        (-4, 4, list(range(-4, 5))),
        (0.5, 6.5, [1, 2, 3, 4, 5, 6]),
        (0, 100, list(range(0, 101, 10))),
    ],
)
def test_rating_points_are_on_the_scale_and_fine_enough(low, high, expected):
    from scalecode_hf.prompts import rating_points

    task = Task(type=TaskType.REGRESSION, scale={"min": low, "max": high})
    points = rating_points(task)
    np.testing.assert_allclose(points, expected)
    assert low <= min(points) and max(points) <= high
