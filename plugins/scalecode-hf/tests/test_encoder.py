"""The encoder backend: conformance, the three fine-tuning modes, batching, precision, saved models."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import torch

from scalecode import FitConfig, Task, TaskType
from scalecode.errors import StopRun
from scalecode.testing import BackendConformance, sample_gold, sample_task
from scalecode_hf.batching import forward_sorted
from scalecode_hf.devices import quantize_int8
from scalecode_hf.encoder import EncoderBackend
from scalecode_hf.encoder_model import apply_mode, detect_pooling, load_encoder, parameter_counts
from scalecode_hf.models import resolve
from scalecode_hf.options import TrainOptions

QUICK = {"epochs": 3, "batch_size": 8, "learning_rate": 5e-3, "early_stopping_patience": 0}


class TestEncoderConformance(BackendConformance):
    backend_class = EncoderBackend
    train_params: ClassVar[dict] = QUICK

    @pytest.fixture(autouse=True)
    def _tiny_model(self, tiny_bert, ray_local):
        type(self).params = {"model": str(tiny_bert), "pooling": "mean", "max_length": 32}


def test_pooling_follows_the_sentence_transformers_config(tiny_bert, tiny_sentence_bert):
    assert detect_pooling(str(tiny_sentence_bert)) == "mean"
    assert detect_pooling(str(tiny_bert)) == "model"


@pytest.mark.parametrize("pooling", ["model", "mean"])
def test_a_bf16_checkpoint_is_trained_in_fp32(tiny_bert, tmp_path, pooling):
    """transformers loads a checkpoint's own dtype by default; AdamW's updates would vanish in bf16."""
    import shutil

    import torch
    from transformers import AutoModel

    folder = tmp_path / "bf16"
    shutil.copytree(tiny_bert, folder)
    AutoModel.from_pretrained(tiny_bert).to(torch.bfloat16).save_pretrained(folder)
    model = load_encoder(resolve(str(folder)), pooling, 2, problem_type="regression")
    assert {p.dtype for p in model.parameters()} == {torch.float32}


@pytest.mark.parametrize("pooling", ["model", "mean"])
def test_modes_train_what_they_say(tiny_bert, pooling):
    counts = {}
    for mode in ("full", "head", "lora"):
        model = load_encoder(resolve(str(tiny_bert)), pooling, 3, problem_type="single_label_classification")
        counts[mode] = parameter_counts(apply_mode(model, mode, {"r": 4}))
    full, head, lora = counts["full"], counts["head"], counts["lora"]
    assert full[0] == full[1]  # everything trains
    assert head[0] < lora[0] < full[0]
    assert head[0] == 32 * 3 + 3  # the linear head only (BERT's own pooler belongs to the frozen body)
    assert lora[1] > full[1]  # adapters are extra weights


@pytest.mark.parametrize("pooling", ["model", "mean"])
def test_dropout_option_replaces_every_dropout_rate(tiny_bert, pooling):
    source = resolve(str(tiny_bert))
    default = load_encoder(source, pooling, 2, problem_type="regression")
    assert any(m.p > 0 for m in default.modules() if isinstance(m, torch.nn.Dropout))
    model = load_encoder(source, pooling, 2, problem_type="regression", dropout=0.0)
    rates = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert rates and set(rates) == {0.0}
    assert model.encoder.config.hidden_dropout_prob == 0.0
    assert model.encoder.config.attention_probs_dropout_prob == 0.0
    ids = torch.tensor([[2, 7, 9, 3]])
    model.train()  # without dropout, training mode gives the same output twice
    torch.testing.assert_close(model(ids, torch.ones_like(ids)), model(ids, torch.ones_like(ids)))


def test_length_sorted_batches_give_each_document_its_own_output(tiny_bert):
    model = load_encoder(
        resolve(str(tiny_bert)), "mean", 2, problem_type="single_label_classification"
    ).eval()
    rng = np.random.default_rng(0)
    token_ids = [[2, *rng.integers(5, 40, size=n).tolist(), 3] for n in (3, 30, 7, 1, 18, 12)]
    batched = forward_sorted(model, token_ids, batch_size=4, pad_id=0, device=torch.device("cpu"))
    with torch.inference_mode():
        alone = np.vstack(
            [model(torch.tensor([t]), torch.ones(1, len(t), dtype=torch.long)).numpy() for t in token_ids]
        )
    np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_head_only_training_computes_each_documents_features_once(tiny_bert):
    model = apply_mode(
        load_encoder(resolve(str(tiny_bert)), "mean", 2, problem_type="single_label_classification"), "head"
    )
    assert model.cache_features
    calls = []
    model.encoder.register_forward_hook(lambda module, args, out: calls.append(len(args[0]) if args else 0))
    model.train()
    ids = torch.tensor([[2, 7, 9, 3], [2, 11, 3, 0], [2, 5, 6, 3]])
    mask = (ids != 0).long()
    first = model(ids, mask, rows=torch.tensor([0, 1, 2]))
    assert first.requires_grad  # the head still trains
    model(ids[[2, 0]], mask[[2, 0]], rows=torch.tensor([2, 0]))
    model(ids, mask, rows=torch.tensor([0, 1, 2]))
    assert len(calls) == 1  # epochs after the first reuse the features
    # The cached features are the frozen encoder's output with dropout off, as when coding.
    model.eval()
    with torch.no_grad():
        np.testing.assert_allclose(
            model(ids, mask, rows=torch.tensor([0, 1, 2])).numpy(), model(ids, mask).numpy(), atol=1e-6
        )
    full = apply_mode(
        load_encoder(resolve(str(tiny_bert)), "mean", 2, problem_type="single_label_classification"), "full"
    )
    assert not full.cache_features  # a trained encoder's features change with every step


@pytest.fixture(scope="module")
def trained_classifier(tiny_bert, ray_local, tmp_path_factory):
    task = sample_task(TaskType.CLASSIFICATION)
    backend = EncoderBackend(task, {"model": str(tiny_bert), "pooling": "model", "max_length": 32})
    out = tmp_path_factory.mktemp("trained")
    report = backend.fit(
        sample_gold(task, n=90), None, FitConfig(output_dir=out, seed=0, options=TrainOptions(**QUICK))
    )
    return backend, out, report


def test_fit_reports_parameters_and_saves_a_normal_model_folder(trained_classifier):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    backend, out, report = trained_classifier
    assert report.trainable_parameters == report.total_parameters > 0
    assert "validation_macro_f1" in report.metrics
    model = AutoModelForSequenceClassification.from_pretrained(out / "model" / "encoder")
    assert model.config.id2label == {0: "positive", 1: "negative", 2: "neutral"}
    classify = pipeline(
        "text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(out / "model" / "encoder")
    )
    ours = backend.predict_batch(["good great excellent win"]).label[0]
    assert classify("good great excellent win")[0]["label"] == ours


def test_int8_on_cpu_agrees_with_fp32(trained_classifier, tiny_bert):
    backend, out, _ = trained_classifier
    texts = sample_gold(sample_task(TaskType.CLASSIFICATION), n=40, seed=3).texts
    quantised = EncoderBackend(
        backend.task,
        {"model": str(tiny_bert), "pooling": "model", "max_length": 32, "precision": "int8"},
        state_dir=out,
    )
    fp32, int8 = backend.predict_batch(texts), quantised.predict_batch(texts)
    for label in backend.task.label_names:
        np.testing.assert_allclose(fp32.probabilities[label], int8.probabilities[label], atol=0.05)


def test_int8_quantises_the_layers_that_widen_and_keeps_down_projections_and_the_head(tiny_bert):
    model = load_encoder(resolve(str(tiny_bert)), "mean", 3, problem_type="single_label_classification")
    quantised = quantize_int8(model)
    modules = dict(quantised.named_modules())

    def is_int8(name: str) -> bool:
        return isinstance(modules[name], torch.ao.nn.quantized.dynamic.Linear)

    assert is_int8("encoder.encoder.layer.0.attention.self.query")  # 32 -> 32
    assert is_int8("encoder.encoder.layer.1.intermediate.dense")  # 32 -> 64
    assert not is_int8("encoder.encoder.layer.1.output.dense")  # 64 -> 32: fp32
    assert not is_int8("head")  # 32 -> 3: fp32


def test_truncation_is_reported(trained_classifier):
    backend, _, _ = trained_classifier
    out = backend.predict_batch(["good " * 100, "good"])
    assert out.extra["truncated"].tolist() == [True, False]
    assert out.extra["tokens"].tolist() == [32, 3]


def test_a_document_that_fills_max_length_exactly_is_not_reported_cut(trained_classifier):
    backend, _, _ = trained_classifier  # max_length 32: [CLS], the words, [SEP]
    texts = ["good " * 30, "good " * 31, "good " * 100, "good"]
    out = backend.predict_batch(texts)
    assert out.extra["tokens"].tolist() == [32, 32, 32, 3]
    assert out.extra["truncated"].tolist() == [False, True, True, False]
    ids, _ = backend.tokenize(texts)  # cut as the tokenizer cuts, closing [SEP] kept
    assert ids == backend.tokenizer(texts, truncation=True, max_length=32)["input_ids"]


def test_an_already_fine_tuned_classifier_is_used_with_a_label_map(tiny_bert, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = tmp_path / "sentiment"
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_bert, num_labels=2, id2label={0: "NEG", 1: "POS"}
    )
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(folder)
    task = Task(type=TaskType.CLASSIFICATION, labels=["positive", "negative"])
    params = {"model": str(folder), "pooling": "model", "label_map": {"POS": "positive", "NEG": "negative"}}
    EncoderBackend.check(task, EncoderBackend.Params.model_validate(params), train=False)
    out = EncoderBackend(task, params).predict_batch(["good", "bad day"])
    assert set(out.label) <= {"positive", "negative"}
    total = out.probabilities["positive"] + out.probabilities["negative"]
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_an_untrained_new_head_is_refused_before_any_work(tiny_bert):
    task = Task(type=TaskType.CLASSIFICATION, labels=["a", "b"])
    with pytest.raises(ValueError, match="must be trained"):
        EncoderBackend.check(
            task,
            EncoderBackend.Params.model_validate({"model": str(tiny_bert), "pooling": "mean"}),
            train=False,
        )
    with pytest.raises(ValueError, match="label_map"):
        EncoderBackend.check(
            task, EncoderBackend.Params.model_validate({"model": str(tiny_bert)}), train=False
        )


def test_a_lora_adapter_codes_over_the_jobs_model_after_the_project_moved(tiny_bert, tmp_path, fake_training):
    """merge_lora: false keeps the adapter apart; coding loads it over the model the job names, not
    over the folder the base sat in at training (a project moved or copied elsewhere lacks that)."""
    import shutil

    from scalecode_hf.encoder_recipe import EncoderRecipe

    fake_training(EncoderRecipe)  # training without Ray: fixed weights
    task = sample_task(TaskType.REGRESSION)
    gold = sample_gold(task, n=24)
    texts = gold.texts[:6]
    base = shutil.copytree(tiny_bert, tmp_path / "first" / "base")
    coded = {}
    for merge in (True, False):
        # fp32: in bf16 the merged and the separate low-rank product round differently.
        params = {"model": str(base), "pooling": "mean", "max_length": 32, "precision": "fp32"}
        options = TrainOptions(mode="lora", epochs=1, refit=False, merge_lora=merge)
        state = tmp_path / "first" / f"merge-{merge}"
        EncoderBackend(task, params).fit(gold, None, FitConfig(output_dir=state, options=options))
        coded[merge] = np.asarray(EncoderBackend(task, params, state_dir=state).predict_batch(texts).score)
    adapter = tmp_path / "first" / "merge-False" / "model" / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file()
    np.testing.assert_allclose(coded[False], coded[True], rtol=1e-4, atol=1e-4)

    moved = tmp_path / "second"
    shutil.move(tmp_path / "first", moved)
    params = {"model": str(moved / "base"), "pooling": "mean", "max_length": 32, "precision": "fp32"}
    again = EncoderBackend(task, params, state_dir=moved / "merge-False")
    again.load()
    np.testing.assert_allclose(
        np.asarray(again.predict_batch(texts).score), coded[False], rtol=1e-5, atol=1e-5
    )

    (moved / "merge-False" / "model" / "adapter" / "adapter_model.safetensors").unlink()
    with pytest.raises(OSError, match="safetensors only"):
        EncoderBackend(task, params, state_dir=moved / "merge-False").load()


def test_fit_loads_the_weights_here_only_to_save_them(tiny_bert, tmp_path, fake_training, weight_loads):
    """Training runs on Ray Train's workers: the process that calls fit loads the model once, to save
    it, and the trained one only when asked to code."""
    from scalecode_hf.encoder_recipe import EncoderRecipe

    fake_training(EncoderRecipe)
    task = sample_task(TaskType.REGRESSION)
    backend = EncoderBackend(task, {"model": str(tiny_bert), "pooling": "mean", "max_length": 32})
    options = TrainOptions(mode="full", epochs=1, refit=False)
    backend.fit(sample_gold(task, n=24), None, FitConfig(output_dir=tmp_path / "state", options=options))
    # One load stands for training (the fake trains here; Ray Train's workers would), one saves.
    assert len(weight_loads) == 2
    coded = backend.predict_batch(["good great", "terrible crisis"])  # the trained model, loaded now
    assert len(weight_loads) == 3
    assert coded.score is not None and len(coded.score) == 2


@pytest.mark.parametrize("task_type", [TaskType.REGRESSION, TaskType.CLASSIFICATION])
def test_a_model_without_a_trained_head_is_refused_when_not_training(tiny_bert, task_type):
    """A plain encoder has no classifier: transformers would draw one at random at every load, and
    its outputs, different each time, would pass for codes."""
    task = sample_task(task_type)
    params: dict = {"model": str(tiny_bert)}
    if task_type is TaskType.CLASSIFICATION:
        params["label_map"] = {"LABEL_0": task.label_names[0], "LABEL_1": task.label_names[1]}
    validated = EncoderBackend.Params.model_validate(params)
    with pytest.raises(ValueError, match=r"is not a fine-tuned classifier .*BertModel"):
        EncoderBackend.check(task, validated, train=False)  # before any work, from its config
    # And from its weights, for a hub model, whose config check() does not read: the run stops.
    with pytest.raises(StopRun, match=r"holds no trained classification head .*classifier\.weight"):
        EncoderBackend(task, params).predict_batch(["good day"])


def test_a_classifier_of_two_outputs_is_no_regression_model(tiny_bert, tmp_path):
    folder = _sentiment_classifier(tiny_bert, tmp_path / "sentiment")
    task, params = sample_task(TaskType.REGRESSION), {"model": str(folder)}
    with pytest.raises(ValueError, match="2 outputs, where a regression needs a model with one"):
        EncoderBackend.check(task, EncoderBackend.Params.model_validate(params), train=False)
    with pytest.raises(StopRun, match="2 outputs, where a regression needs a model with one"):
        EncoderBackend(task, params).predict_batch(["good day"])


def test_a_trained_model_is_refused_under_a_codebook_in_another_order(trained_classifier, tiny_bert):
    """Outputs are read by position: the labels in another order would swap every code."""
    backend, out, _ = trained_classifier
    reordered = backend.task.model_copy(update={"labels": tuple(reversed(backend.task.labels))})
    params = {"model": str(tiny_bert), "pooling": "model", "max_length": 32}
    with pytest.raises(ValueError, match="was trained for the labels"):
        EncoderBackend(reordered, params, state_dir=out).load()
    EncoderBackend(backend.task, params, state_dir=out).load()  # the same codebook loads


def test_a_coding_option_changed_between_runs_is_still_the_same_training(tiny_bert, tmp_path, fake_training):
    """batch_size, device and cpus may change between runs (operational): a killed training still
    resumes its checkpoints, and validation still gets the batch size it runs in."""
    import pyarrow as pa

    from scalecode_hf.encoder_recipe import EncoderRecipe
    from scalecode_hf.training import claim_checkpoints

    configs: list[dict] = []
    fake_training(EncoderRecipe, configs)
    task = sample_task(TaskType.REGRESSION)
    gold = sample_gold(task, n=24)
    base = {"model": str(tiny_bert), "pooling": "mean", "max_length": 32}
    for changed in ({"batch_size": 32}, {"batch_size": 4, "device": "cpu", "cpus": 3}):
        options = TrainOptions(mode="full", epochs=1)
        EncoderBackend(task, base | changed).fit(
            gold, None, FitConfig(output_dir=tmp_path / "s", options=options)
        )
    folder, table = tmp_path / "checkpoints", pa.table({"input_ids": [[1, 2], [3]]})
    claim_checkpoints(folder, {"seed": 0, "recipe_config": configs[0]}, table)
    claim_checkpoints(folder, {"seed": 0, "recipe_config": configs[1]}, table)
    recipe = EncoderRecipe(configs[1])
    assert "score" in recipe.validate(recipe.build(torch.device("cpu")), torch.device("cpu"), "fp32")


def _sentiment_classifier(tiny_bert, folder, **config):
    """The tiny BERT with a classifier head of its own (labels NEG and POS), as a fine-tuned hub model."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_bert, num_labels=2, id2label={0: "NEG", 1: "POS"}, **config
    )
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(folder)
    return folder


def test_max_length_beyond_the_models_positions_is_cut_to_them(
    tiny_bert, tmp_path, fake_training, caplog, monkeypatch
):
    """The tiny BERT has 128 positions: max_length 256 codes long documents cut at 128, with a warning,
    rather than failing whole batches at the position embeddings."""
    from scalecode_hf import encoder
    from scalecode_hf.encoder_recipe import EncoderRecipe

    monkeypatch.setattr(encoder, "_warned", set())  # warned once per process: maybe by another test
    long_text = "good " * 400
    folder = _sentiment_classifier(tiny_bert, tmp_path / "sentiment")
    task = Task(type=TaskType.CLASSIFICATION, labels=["positive", "negative"])
    params = {"model": str(folder), "max_length": 256, "label_map": {"POS": "positive", "NEG": "negative"}}
    with caplog.at_level("WARNING"):
        out = EncoderBackend(task, params).predict_batch([long_text, "bad"])
    assert out.extra["tokens"].tolist()[0] == 128 and out.extra["truncated"].tolist() == [True, False]
    assert "max_length 256" in caplog.text

    fake_training(EncoderRecipe)
    task = sample_task(TaskType.REGRESSION)
    params = {"model": str(tiny_bert), "pooling": "mean", "max_length": 256}
    state = tmp_path / "state"
    options = TrainOptions(mode="full", epochs=1)
    EncoderBackend(task, params).fit(
        sample_gold(task, n=24), None, FitConfig(output_dir=state, options=options)
    )
    coded = EncoderBackend(task, params, state_dir=state).predict_batch([long_text])
    assert coded.extra["tokens"].tolist() == [128]

    # RoBERTa's positions start after the padding index: 514 embeddings hold 512 tokens.
    from transformers import RobertaConfig

    from scalecode_hf.encoder import position_limit

    assert position_limit(RobertaConfig(max_position_embeddings=514, pad_token_id=1), None) == 512


def test_a_bf16_classifier_used_as_it_is_codes_in_fp32(tiny_bert, tmp_path):
    """precision fp32 means fp32 weights, whatever dtype the checkpoint was saved in."""
    folder = _sentiment_classifier(tiny_bert, tmp_path / "sentiment", dtype=torch.bfloat16)
    task = Task(type=TaskType.CLASSIFICATION, labels=["positive", "negative"])
    params = {"model": str(folder), "precision": "fp32", "label_map": {"POS": "positive", "NEG": "negative"}}
    backend = EncoderBackend(task, params)
    backend.load()
    assert {p.dtype for p in backend.model.parameters()} == {torch.float32}


def test_an_evaluation_set_given_to_fit_is_the_validation_set(tiny_bert, tmp_path, fake_training):
    """fit(train, eval): every training document is trained on and eval validates; no second split."""
    from scalecode_hf.encoder_recipe import EncoderRecipe

    configs: list[dict] = []
    fake_training(EncoderRecipe, configs)
    task = sample_task(TaskType.REGRESSION)
    gold = sample_gold(task, n=30)
    train, held_out = gold.subset(range(24)), gold.subset(range(24, 30))
    backend = EncoderBackend(task, {"model": str(tiny_bert), "pooling": "mean", "max_length": 32})
    options = TrainOptions(mode="full", epochs=1)
    report = backend.fit(train, held_out, FitConfig(output_dir=tmp_path / "state", options=options))
    assert (report.n_train, report.n_eval) == (24, 6)
    assert configs[0]["validation"]["targets"] == list(held_out.targets)


def test_a_label_too_rare_to_stratify_leaves_the_validation_split_unstratified(
    tiny_bert, tmp_path, fake_training
):
    from scalecode_hf.encoder_recipe import EncoderRecipe

    fake_training(EncoderRecipe)
    task = sample_task(TaskType.CLASSIFICATION)
    gold = sample_gold(task, n=40)
    rare = task.label_names[0]
    first = gold.targets.index(rare)
    gold = gold.subset([i for i, t in enumerate(gold.targets) if t != rare or i == first])
    backend = EncoderBackend(task, {"model": str(tiny_bert), "pooling": "mean", "max_length": 32})
    options = TrainOptions(mode="full", epochs=1)
    report = backend.fit(gold, None, FitConfig(output_dir=tmp_path / "state", options=options))
    assert any("not stratified" in note for note in report.notes)


def _multilabel_classifier(tiny_bert, folder, bias):
    """A multi-label classifier (labels TOXIC and INSULT) whose sigmoid outputs follow ``bias`` alone."""
    folder = _sentiment_classifier(tiny_bert, folder, problem_type="multi_label_classification")
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(folder, id2label={0: "TOXIC", 1: "INSULT"})
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor(bias))
    model.save_pretrained(folder)
    return folder


def test_a_multilabel_classifier_used_as_it_is_assigns_its_likely_labels(tiny_bert, tmp_path):
    """Its labels are independent: each codebook label gets the sigmoid of its model label's logit."""
    folder = _multilabel_classifier(tiny_bert, tmp_path / "toxic", [3.0, -3.0])
    task = Task(type=TaskType.MULTILABEL, labels=["toxic", "insult"])
    params = {"model": str(folder), "label_map": {"TOXIC": "toxic", "INSULT": "insult"}}
    out = EncoderBackend(task, params).predict_batch(["bad day", "good"])
    assert out.labels == [["toxic"], ["toxic"]]
    np.testing.assert_allclose(out.probabilities["toxic"], 1 / (1 + np.exp(-3.0)), rtol=1e-4)
    np.testing.assert_allclose(out.probabilities["insult"], 1 / (1 + np.exp(3.0)), rtol=1e-4)


def test_label_map_keys_the_model_lacks_are_refused(tiny_bert, tmp_path):
    folder = _multilabel_classifier(tiny_bert, tmp_path / "toxic", [0.0, 0.0])
    task = Task(type=TaskType.MULTILABEL, labels=["toxic", "insult"])
    params = {"model": str(folder), "label_map": {"Toxic": "toxic", "INSULT": "insult"}}
    with pytest.raises(ValueError, match=r"label_map: \['Toxic'\].*'TOXIC'"):
        EncoderBackend(task, params).load()


@pytest.mark.parametrize("pooling", ["mean", "model"])
def test_lora_adapts_every_linear_layer_of_an_architecture_peft_has_no_choice_for(
    tiny_bert, tmp_path, pooling
):
    """peft names no default targets for DistilBERT: LoRA then adapts its linear layers, the head
    trained whole, rather than failing in a training worker."""
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertModel

    folder = tmp_path / "tiny-distilbert"
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    tokenizer.save_pretrained(folder)
    config = DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=2, hidden_dim=64)
    DistilBertModel(config).save_pretrained(folder)
    model = load_encoder(resolve(str(folder)), pooling, 3, problem_type="single_label_classification")
    model = apply_mode(model, "lora", {"r": 4})
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert any("q_lin.lora_A" in name for name in trainable)
    assert any("ffn.lin1.lora_A" in name for name in trainable)
    head = [n for n in trainable if "lora_" not in n]
    assert head and not any("lora_" in n and ("classifier" in n or "head" in n) for n in trainable)
    ids = torch.tensor([[2, 7, 9, 3]])
    assert model(ids, torch.ones_like(ids)).shape == (1, 3)
