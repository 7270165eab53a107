"""The ``encoder`` backend: BERT-like models that classify (softmax), multi-label (sigmoid) or score (MSE).

Fine-tuned on the gold training split through Ray Train (``train:``, see training.py); its trained state
is the final model as a Hugging Face folder, which each Ray actor loads once. Without training, an
already fine-tuned classifier from a folder or the hub is used as it is (``pooling: model``), its own
labels mapped to the codebook with ``label_map``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from scalecode import (
    Backend,
    BackendParams,
    FitConfig,
    FitReport,
    GoldSet,
    Predictions,
    Resources,
    Task,
    TaskType,
)
from scalecode.errors import StopRun
from scalecode.manifest import write_json
from scalecode_hf.models import fingerprint, resolve
from scalecode_hf.options import EncoderParams, TrainOptions

if TYPE_CHECKING:
    import torch

ALL_TASKS = frozenset({TaskType.CLASSIFICATION, TaskType.MULTILABEL, TaskType.REGRESSION})
MODEL_DIR = "model"
CONFIG_FILE = "scalecode-encoder.json"  # written by encoder_model.save_encoder
# Documents per predict_batch call, at least. They are sorted by length within a call, so the more
# there are, the less padding: on SOTU paragraphs, 128 documents per call pad the forward passes
# with 14% more tokens than sorting the whole corpus, 1,024 with 1.5% (and coded 17% faster).
CALL_DOCUMENTS = 1024
# Architectures whose position ids start after the padding index (RoBERTa's fairseq heritage): the
# first pad_token_id + 1 of their max_position_embeddings never hold a token.
PADDING_OFFSET_POSITIONS = frozenset(
    {
        "roberta",
        "xlm-roberta",
        "xlm-roberta-xl",
        "camembert",
        "longformer",
        "roberta-prelayernorm",
        "data2vec-text",
        "ibert",
        "mpnet",
    }
)
# Tokenizers without a limit of their own report one as large as this, or larger.
UNSET_TOKENIZER_LIMIT = 1_000_000

log = logging.getLogger(__name__)
_warned: set[tuple[int, int]] = set()  # (asked, limit) pairs already warned about in this process


def problem_type(task: Task) -> str:
    return {
        TaskType.CLASSIFICATION: "single_label_classification",
        TaskType.MULTILABEL: "multi_label_classification",
        TaskType.REGRESSION: "regression",
    }[task.type]


def num_outputs(task: Task) -> int:
    return 1 if task.type is TaskType.REGRESSION else len(task.labels)


def to_predictions(outputs: np.ndarray, task: Task, meta: dict[str, Any], threshold: float) -> Predictions:
    """Model outputs (documents x outputs) as codes with probabilities."""
    if task.type is TaskType.REGRESSION:
        return Predictions(score=outputs[:, 0] * meta.get("target_std", 1.0) + meta.get("target_mean", 0.0))
    labels = task.label_names
    if task.type is TaskType.CLASSIFICATION:
        shifted = outputs - outputs.max(axis=1, keepdims=True)
        probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        return Predictions(
            label=[labels[i] for i in probs.argmax(axis=1)],
            confidence=probs.max(axis=1),
            probabilities={name: probs[:, j] for j, name in enumerate(labels)},
        )
    probs = 1.0 / (1.0 + np.exp(-outputs))
    present = probs >= threshold
    return Predictions(
        labels=[[labels[j] for j in np.flatnonzero(row)] for row in present],
        confidence=np.where(present, probs, 1 - probs).min(axis=1),
        probabilities={name: probs[:, j] for j, name in enumerate(labels)},
    )


def position_limit(config: Any, tokenizer: Any) -> int | None:
    """The most tokens the model can take at once: its position embeddings, less the positions its
    architecture reserves, or the tokenizer's own limit where that is lower; None where neither says."""
    limits = []
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        reserved = 0
        if getattr(config, "model_type", None) in PADDING_OFFSET_POSITIONS:
            reserved = int(getattr(config, "pad_token_id", None) or 0) + 1
        limits.append(positions - reserved)
    declared = getattr(tokenizer, "model_max_length", None)
    if isinstance(declared, int) and 0 < declared < UNSET_TOKENIZER_LIMIT:
        limits.append(declared)
    return min(limits) if limits else None


def capped_length(asked: int, config: Any, tokenizer: Any) -> int:
    """``max_length`` as the model can take it. Longer sequences would fail at the position embeddings
    (a tensor-size error that turns whole batches into error rows), so documents are cut to the
    model's limit instead, with a warning once per process."""
    limit = position_limit(config, tokenizer)
    if limit is None or asked <= limit:
        return asked
    if (asked, limit) not in _warned:
        _warned.add((asked, limit))
        log.warning(
            "max_length %d is more than the model's %d positions; documents are cut at %d",
            asked,
            limit,
            limit,
        )
    return limit


def targets(gold: GoldSet, mean: float = 0.0, std: float = 1.0) -> pa.Array:
    """Training targets: label indices, multi-hot rows, or standardised scores."""
    if gold.task.type is TaskType.CLASSIFICATION:
        return pa.array(gold.label_codes(), pa.int64())
    if gold.task.type is TaskType.MULTILABEL:
        return pa.array(gold.label_indicator().astype(np.float32).tolist(), pa.list_(pa.float32()))
    return pa.array((gold.scores() - mean) / std, pa.float32())


def not_a_classifier(config: dict[str, Any], task: Task, model: str) -> str | None:
    """Why a model (by its config.json) cannot code untrained: a plain or sentence encoder has no
    classifier, and one would be drawn at random at every load; None where it can."""
    architectures = config.get("architectures") or []
    # A config that names no architecture (older saves) is judged by its weights when it is loaded.
    if architectures and not any(str(a).endswith("ForSequenceClassification") for a in architectures):
        return (
            f"{model}: is not a fine-tuned classifier (its architecture is "
            f"{', '.join(architectures)}), so its head would start at random and its "
            "codes would be noise; set train: true to fine-tune one, or name a fine-tuned classifier"
        )
    return _not_a_scorer(task, len(config.get("id2label") or {}) or int(config.get("num_labels", 2)), model)


def _not_a_scorer(task: Task, outputs: int, model: str) -> str | None:
    if task.type is TaskType.REGRESSION and outputs != 1:
        return (
            f"{model}: a classifier with {outputs} outputs, where a regression needs a model with one "
            "(num_labels 1); set train: true to fine-tune one"
        )
    return None


def fresh_head(loading: dict[str, Any], task: Task, outputs: int, model: str) -> str | None:
    """What ``not_a_classifier`` says, from what loading the weights found: a classifier's weights
    missing or of another shape (transformers then draws them at random)."""
    fresh = sorted(
        {str(k) for k in loading.get("missing_keys", ())}
        | {str(k[0] if isinstance(k, tuple) else k) for k in loading.get("mismatched_keys", ())}
    )
    if fresh:
        shown = ", ".join(fresh[:4]) + (", ..." if len(fresh) > 4 else "")
        return (
            f"{model}: holds no trained classification head (it lacks {shown}, which would start at "
            "random, so its codes would be noise); set train: true to fine-tune one, or name a "
            "fine-tuned classifier"
        )
    return _not_a_scorer(task, outputs, model)


class EncoderBackend(Backend):
    """An encoder with a classification or regression head, fine-tuned on the gold documents."""

    name = "encoder"
    description = "BERT-like encoder: classify, multi-label or score; fine-tuned full, head-only or LoRA"
    task_types = ALL_TASKS
    trainable = True
    Params = EncoderParams
    TrainParams = TrainOptions
    params: EncoderParams

    def __init__(self, task: Task, params: Any = None, *, state_dir: str | Path | None = None) -> None:
        super().__init__(task, params, state_dir=state_dir)
        self.source = resolve(
            self.params.model, revision=self.params.revision, trust_remote_code=self.params.trust_remote_code
        )
        self.model: torch.nn.Module | None = None
        self.tokenizer: Any = None
        self.meta: dict[str, Any] = {}
        self.max_length = self.params.max_length  # capped at the model's limit once it is loaded
        self.fresh_head: str | None = None  # why the untrained model's head cannot code, if it cannot
        self._closing: int | None = None  # see _closing_specials, once _closing_known
        self._closing_known = False

    @classmethod
    def check(cls, task: Task, params: BackendParams, *, train: bool) -> None:
        assert isinstance(params, EncoderParams)
        source = resolve(params.model, revision=params.revision, trust_remote_code=params.trust_remote_code)
        if not train:
            if params.pooling not in ("model", "auto"):
                raise ValueError("an encoder with a new head must be trained (train: true)")
            if task.type is not TaskType.REGRESSION and not params.label_map:
                raise ValueError(
                    "label_map: map the classifier's own labels to the codebook, or set train: true"
                )
            if source.kind == "folder":  # a hub model's config is read when it is loaded
                config = json.loads((Path(source.location) / "config.json").read_text())
                if reason := not_a_classifier(config, task, params.model):
                    raise ValueError(reason)
        if params.label_map:
            unknown = [v for v in params.label_map.values() if v not in task.label_names]
            if unknown:
                raise ValueError(f"label_map: {unknown} are not codebook labels")

    def resources(self) -> Resources:
        gpus = self.params.gpus
        if gpus == "auto":
            gpus = 1.0 if self.params.device != "cpu" and _cluster_has_gpus() else 0.0
        return Resources(
            cpus=self.params.cpus,
            gpus=float(gpus),
            batch_size=max(self.params.batch_size * 4, CALL_DOCUMENTS),
        )

    def load(self) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from scalecode_hf.devices import choose_device, choose_precision, quiet_libraries
        from scalecode_hf.encoder_model import EncoderModel, read_encoder

        quiet_libraries()
        self.device = choose_device(self.params.device)
        self.precision = choose_precision(self.params.precision, self.device)
        if self.device.type == "cpu":
            torch.set_num_threads(max(1, int(self.params.cpus)))
        if self.state_dir is not None:
            folder = self.state_dir / MODEL_DIR
            model, self.meta = read_encoder(folder, self.params.trust_remote_code, base=self.source)
            trained_for = self.meta.get("labels") or None
            if trained_for is not None and list(trained_for) != list(self.task.label_names):
                # Outputs are read by position: another order would swap codes without a word.
                raise ValueError(
                    f"{folder} was trained for the labels {list(trained_for)}, and the codebook now "
                    f"has {list(self.task.label_names)}; train it again for this codebook"
                )
            tokenizer_dir = folder / "tokenizer"
            self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        else:  # an already fine-tuned classifier, used as it is
            location, kwargs = self.source.pretrained()
            # fp32 whatever the checkpoint holds (transformers keeps its dtype by default): precision
            # fp32 must mean fp32, and autocast gives bf16 or fp16 where they are asked for.
            encoder, loading = AutoModelForSequenceClassification.from_pretrained(
                location, use_safetensors=True, dtype=torch.float32, output_loading_info=True, **kwargs
            )
            # Not raised here: load() also serves a backend about to be trained (fit replaces it).
            self.fresh_head = fresh_head(
                loading, self.task, int(encoder.config.num_labels), self.params.model
            )
            model = EncoderModel(encoder, "model", int(encoder.config.num_labels))
            self.tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
            self.meta = {"id2label": {int(k): v for k, v in encoder.config.id2label.items()}}
            self._check_label_map(list(self.meta["id2label"].values()))
        self.max_length = capped_length(self.params.max_length, model.encoder.config, self.tokenizer)
        self.model = self._prepare(model)

    def _prepare(self, model: torch.nn.Module) -> torch.nn.Module:

        model = model.eval().to(self.device)
        if self.precision == "int8":
            from scalecode_hf.devices import quantize_int8

            model = quantize_int8(model)
        return model

    def tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], list[bool]]:
        """Each document's ids, cut to ``max_length``, and whether it was cut.

        Told by tokenising to one token more: a document of exactly ``max_length`` tokens fills it
        and is not cut. One longer loses its last content token, its closing special tokens kept,
        which is how the tokenizer cuts at ``max_length`` (tested equal), without tokenising it twice.
        """
        limit = self.max_length
        encoded: list[list[int]] = self.tokenizer(list(texts), truncation=True, max_length=limit + 1)[
            "input_ids"
        ]
        cut = [len(ids) > limit for ids in encoded]
        closing = self._closing_specials()
        longer = [i for i, over in enumerate(cut) if over]
        if closing is None:  # a layout not understood: let the tokenizer cut them again
            again = self.tokenizer([texts[i] for i in longer], truncation=True, max_length=limit)["input_ids"]
            for i, ids in zip(longer, again, strict=True):
                encoded[i] = ids
        else:
            for i in longer:
                ids = encoded[i]
                encoded[i] = ids[: limit - closing] + ids[len(ids) - closing :]
        return encoded, cut

    def _closing_specials(self) -> int | None:
        """How many special tokens the tokenizer puts after a document's own ([SEP], </s>: 1); None
        where its ids do not hold the document's as one run."""
        if not self._closing_known:
            bare = list(self.tokenizer("a b", add_special_tokens=False)["input_ids"])
            full = list(self.tokenizer("a b")["input_ids"])
            starts = [i for i in range(len(full) - len(bare) + 1) if full[i : i + len(bare)] == bare]
            self._closing = len(full) - starts[0] - len(bare) if bare and starts else None
            self._closing_known = True
        return self._closing

    def _outputs(self, texts: Sequence[str]) -> tuple[np.ndarray, list[int], list[bool]]:
        from scalecode_hf.batching import forward_sorted

        assert self.model is not None
        model = self.model
        encoded, cut = self.tokenize(texts)
        outputs = forward_sorted(
            model,
            encoded,
            batch_size=self.params.batch_size,
            pad_id=self.tokenizer.pad_token_id or 0,
            device=self.device,
            precision="fp32" if self.precision == "int8" else self.precision,
        )
        return outputs, [len(e) for e in encoded], cut

    def predict_batch(self, texts: Sequence[str]) -> Predictions:
        if not texts:
            return to_predictions(np.zeros((0, num_outputs(self.task))), self.task, {}, self.params.threshold)
        if self.model is None:
            self.load()
        if self.state_dir is None and self.fresh_head:
            # The whole run stops: every document would fail alike, each written as an error row.
            raise StopRun(self.fresh_head)
        outputs, lengths, cut = self._outputs(texts)
        extra = {"tokens": np.asarray(lengths), "truncated": np.asarray(cut, dtype=bool)}
        if self.state_dir is None and self.params.label_map:
            outputs = self._map_labels(outputs)
        predictions = to_predictions(outputs, self.task, self.meta, self.params.threshold)
        predictions.extra = extra
        return predictions

    def _check_label_map(self, model_labels: list[str]) -> None:
        """Refuse ``label_map`` keys the classifier does not have: one spelt otherwise than the model
        spells it ("Toxic" for "TOXIC") would map nothing, and its codebook label never be coded."""
        if not self.params.label_map:
            return
        unknown = [key for key in self.params.label_map if key not in model_labels]
        if unknown:
            raise ValueError(
                f"label_map: {unknown} are not labels of the model; its labels are {model_labels}"
            )

    def _map_labels(self, outputs: np.ndarray) -> np.ndarray:
        """An untrained classifier's logits as logits of the codebook labels (see to_predictions)."""
        assert self.params.label_map is not None
        if self.task.type is TaskType.MULTILABEL:
            return self._map_multilabel(outputs)
        probs = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        mapped = np.full((len(outputs), len(self.task.labels)), 1e-12)
        for j, name in self.meta["id2label"].items():
            target = self.params.label_map.get(name)
            if target is not None:
                mapped[:, self.task.label_names.index(target)] += probs[:, j]
        return np.asarray(np.log(mapped))

    def _map_multilabel(self, outputs: np.ndarray) -> np.ndarray:
        """A multi-label classifier's own labels are independent (sigmoid, not softmax): each codebook
        label is as likely as the likeliest model label mapped to it, returned as a logit."""
        assert self.params.label_map is not None
        probs = 1.0 / (1.0 + np.exp(-outputs))
        mapped = np.zeros((len(outputs), len(self.task.labels)))
        for j, name in self.meta["id2label"].items():
            target = self.params.label_map.get(name)
            if target is not None:
                column = self.task.label_names.index(target)
                mapped[:, column] = np.maximum(mapped[:, column], probs[:, j])
        mapped = np.clip(mapped, 1e-12, 1 - 1e-12)
        return np.asarray(np.log(mapped) - np.log1p(-mapped))

    def fit(self, train: GoldSet, eval: GoldSet | None, config: FitConfig) -> FitReport:
        import torch
        from transformers import AutoConfig, AutoTokenizer

        from scalecode_hf.devices import quiet_libraries
        from scalecode_hf.encoder_model import EncoderModel, detect_pooling, load_trainable, save_encoder
        from scalecode_hf.encoder_recipe import EncoderRecipe
        from scalecode_hf.training import (
            OPERATIONAL,
            epochs_note,
            refit_on_all,
            run_training,
            validation_metrics,
            validation_split,
        )

        quiet_libraries()
        options = config.options
        assert isinstance(options, TrainOptions)
        started = time.perf_counter()
        location, kwargs = self.source.pretrained()
        tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
        max_length = capped_length(
            self.params.max_length, AutoConfig.from_pretrained(location, **kwargs), tokenizer
        )
        fit_set, validation, split_note = validation_split(train, eval, options.validation_size, config.seed)

        def standardisation(gold: GoldSet) -> tuple[float, float]:
            if self.task.type is not TaskType.REGRESSION:
                return 0.0, 1.0
            scores = gold.scores()
            return float(scores.mean()), float(scores.std() or 1.0)

        def tokenize(texts: Sequence[str]) -> list[list[int]]:
            ids: list[list[int]] = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
            return ids

        def training_table(gold: GoldSet, mean: float, std: float) -> pa.Table:
            return pa.table(
                {
                    "input_ids": pa.array(tokenize(gold.texts), pa.list_(pa.int32())),
                    "label": targets(gold, mean, std),
                    "row": pa.array(range(len(gold)), pa.int64()),  # lets head-only training cache features
                }
            )

        mean, std = standardisation(fit_set)
        table = training_table(fit_set, mean, std)
        pooling: str = self.params.pooling
        if pooling == "auto":
            pooling = detect_pooling(location) if self.source.kind == "folder" else "model"
        recipe_config = {
            "source": asdict(self.source),
            "pooling": pooling,
            "num_outputs": num_outputs(self.task),
            "problem_type": problem_type(self.task),
            "labels": self.task.label_names or None,
            "threshold": self.params.threshold,
            "mode": options.mode,
            "dropout": options.dropout,
            "lora": options.lora.model_dump(),
            "task": self.task.model_dump(mode="json"),
            "pad_id": tokenizer.pad_token_id or 0,
            # Validation's forward passes read it; an operational option, so left out of the
            # checkpoints' claim: a job may change it between runs and still resume.
            OPERATIONAL: {"batch_size": self.params.batch_size},
            "target_mean": mean,
            "target_std": std,
            "validation": {"input_ids": tokenize(validation.texts), "targets": list(validation.targets)},
        }
        trained = run_training(
            "scalecode_hf.encoder_recipe:EncoderRecipe",
            recipe_config,
            table,
            options,
            checkpoint_dir=config.checkpoint_dir,
            seed=config.seed,
        )
        trained_on = fit_set
        if options.refit:
            mean, std = standardisation(train)
            recipe_config |= {"target_mean": mean, "target_std": std}
            trained = refit_on_all(
                "scalecode_hf.encoder_recipe:EncoderRecipe",
                recipe_config,
                training_table(train, mean, std),
                options,
                trained,
                checkpoint_dir=config.checkpoint_dir,
                seed=config.seed,
            )
            trained_on = train
        recipe = EncoderRecipe(recipe_config)
        model = recipe.build(torch.device("cpu"))
        load_trainable(model, trained.best_weights)
        meta = {
            key: recipe_config[key]
            for key in (
                "pooling",
                "num_outputs",
                "problem_type",
                "labels",
                "target_mean",
                "target_std",
                "source",
            )
        }
        meta |= {"mode": options.mode, "max_length": max_length, "best_epoch": trained.best_epoch}
        folder = config.output_dir / MODEL_DIR
        assert isinstance(model, EncoderModel)
        save_encoder(model, folder, meta, tokenizer, merge=options.merge_lora)
        del model
        write_json(config.output_dir / "training.json", trained.history)  # strict JSON: NaN as null
        self.state_dir = config.output_dir
        # The trained model is loaded when this instance is asked to code (predict_batch), not now:
        # the runner codes through Ray actors, each of which loads it from the saved folder.
        self.model = None
        notes = [
            epochs_note(options.mode, trained, len(trained_on)),
            f"{trained.workers} worker(s)"
            + (f", DeepSpeed ZeRO-{trained.deepspeed_stage}" if trained.deepspeed_stage is not None else ""),
            *([split_note] if split_note else []),
        ]
        return FitReport(
            seconds=time.perf_counter() - started,
            n_train=len(trained_on),
            n_eval=len(validation),
            trainable_parameters=trained.trainable_parameters,
            total_parameters=trained.total_parameters,
            metrics=validation_metrics(trained),
            notes=notes,
        )

    def fingerprint(self) -> dict[str, str]:
        prints = fingerprint(self.source)
        if self.state_dir is not None and (self.state_dir / MODEL_DIR / CONFIG_FILE).exists():
            from scalecode_hf.models import _sha256

            for path in sorted((self.state_dir / MODEL_DIR).rglob("*.safetensors")):
                prints[str(path)] = _sha256(path)
        return prints


def _cluster_has_gpus() -> bool:
    import ray

    return bool(ray.is_initialized() and ray.cluster_resources().get("GPU", 0) > 0)
