"""The ``causal-lm`` backend: an instruction-tuned language model prompted with the codebook.

Nothing is generated and nothing is parsed. For each document the backend scores every possible
answer (see prompts.py) by the model's likelihood of it and turns the scores into probabilities:

- classification: softmax over the labels' log-likelihoods; the label is the most likely one, so every
  answer is a valid label and comes with per-label probabilities;
- multi-label: for each label, P(yes) against P(no) for the question whether the label applies;
- regression: the expected value of the model's distribution over the rating points (whole numbers on
  the task's scale, or eleven points across a narrow or wide one; see prompts.rating_points), which is
  finer and less prone to ties than the single most likely number.

Fine-tuning (``train:``, LoRA by default, full also possible) teaches the model the gold answers with
the same prompts, the loss on the answer's tokens only.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from scalecode import (
    Backend,
    BackendParams,
    Example,
    FitConfig,
    FitReport,
    GoldSet,
    Predictions,
    Resources,
    Task,
    TaskType,
    operational,
)
from scalecode.manifest import write_json
from scalecode.task import round_robin
from scalecode_hf.models import ModelSource, fingerprint, resolve
from scalecode_hf.options import CausalTrainOptions, DeviceChoice, Precision, TrainOptions

if TYPE_CHECKING:
    import torch

MODEL_DIR = "model"
# peft's files: a model folder with this config holds a LoRA adapter (merge_lora: false), not a model.
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"

log = logging.getLogger(__name__)
# Tokens kept free beside the prompt measured with an empty document: templates that trim a message
# (Llama 3's, Gemma's) render an empty one without the spaces or newlines a real document keeps, and
# a document's first and last tokens may merge differently with what surrounds them.
TEMPLATE_SLACK = 4
_warned: set[tuple[Any, ...]] = set()  # warnings already given in this process


class CausalParams(BackendParams):
    model: str = Field(description="a model folder, a hub id (org/name) or a .gguf file")
    revision: str | None = None
    trust_remote_code: bool = False
    max_length: int = Field(
        512,
        ge=8,
        description="tokens of a document in the prompt; longer ones are truncated (to fewer where the "
        "model's positions hold no more besides the rest of the prompt)",
    )
    batch_size: int = operational(8, ge=1, description="sequences (document and answer) per forward pass")
    precision: Precision = "auto"
    device: DeviceChoice = operational("auto")
    cpus: float = operational(1.0, gt=0)
    gpus: float | Literal["auto"] = operational("auto")
    few_shot: int | None = Field(
        None, ge=0, description="codebook examples shown before each document (default all)"
    )
    threshold: float = Field(0.5, gt=0, lt=1, description="multi-label: P(yes) above which a label applies")


# The options that are no part of what training trains: the model comes to the workers as ``source``,
# and the operational ones (where and in what batches coding runs) may change between runs. Left out,
# a moved model folder or a coding batch size changed does not make the training look different to
# its checkpoints (training.claim_checkpoints); validation's batch size reaches the workers apart.
NOT_FOR_TRAINING = frozenset({"model", "revision", "trust_remote_code"}) | CausalParams.operational_options()


class CausalScorer:
    """Prompts, candidate answers and their likelihoods for one task, model and tokenizer.

    ``config``, the model's configuration, caps the documents' tokens so that every sequence fits in
    the model's positions; without it, documents are cut at ``max_length`` only."""

    def __init__(self, task: Task, tokenizer: Any, params: dict[str, Any], config: Any = None) -> None:
        from scalecode_hf import prompts

        self.task = task
        self.tokenizer = tokenizer
        self.params = params
        self.prompts = prompts
        shown = params.get("few_shot")
        # Taken in turn from each label, so that few_shot of them cover as many labels as they can,
        # and the example just before the document is not always of the same label.
        examples = round_robin(task.examples)
        self.chosen: list[Example] = examples if shown is None else examples[:shown]  # as written
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.system_role = prompts.takes_system_role(tokenizer)
        # What the tokenizer reads as a control token wherever it meets it in a text (<|im_end|>,
        # <|im_start|>...): the added tokens it marks special, which a document must not be read as.
        added = getattr(tokenizer, "added_tokens_decoder", {}).values()
        specials = {str(t.content) for t in added if getattr(t, "special", False)}
        self.specials = sorted(t for t in specials | set(getattr(tokenizer, "all_special_tokens", ())) if t)
        # One pass over a document, whatever the number of special tokens (Gemma's run to thousands).
        self._special = re.compile("|".join(map(re.escape, self.specials))) if self.specials else None
        # An example is a document too, cut like one: a long gold document drawn as an example would
        # otherwise be in every prompt whole, and might leave no room for the document coded.
        self.max_length = params["max_length"]
        self.examples: list[Example] = [
            example
            if not (cut := self.truncate(example.text))[1]
            else example.model_copy(update={"text": cut[0]})
            for example in self.chosen
        ]
        self.max_length = self._document_length(config)
        if not prompts.answers_end(tokenizer):
            name = str(getattr(tokenizer, "name_or_path", "") or "the tokenizer")
            _warn_once(
                ("unended", name),
                "%s: nothing ends an answer (the chat template writes no end of turn and the tokenizer "
                "has no eos_token), so of two answers where one is a prefix of the other ('Pos' and "
                "'Positive', '1' and '10') the shorter is always at least as likely: they cannot be "
                "told apart",
                name,
            )

    def _document_length(self, config: Any) -> int:
        """``max_length``, or fewer tokens where the model's positions hold no more of the document
        besides the rest of the prompt and the longest answer: beyond its positions a model with
        learned position embeddings fails whole batches with an index error."""
        from scalecode_hf.encoder import position_limit

        asked: int = self.params["max_length"]
        positions = None if config is None else position_limit(config, self.tokenizer)
        if positions is None:
            return asked
        around = TEMPLATE_SLACK + max(  # the prompt without a document and the longest answer
            len(tokens) + max(map(len, answers))
            for tokens, answers in (self.encode(c, r) for c, r in self.conversations(""))
        )
        room = positions - around
        if room < 1:
            raise ValueError(
                f"the prompt takes {around} of the model's {positions} positions before any document: "
                "show fewer codebook examples (few_shot) or shorten the instructions"
            )
        if asked <= room:
            return asked
        _warn_once(
            ("positions", asked, room),
            "max_length %d and the prompt's other %d tokens are more than the model's %d positions; "
            "documents are cut at %d",
            asked,
            around,
            positions,
            room,
        )
        return room

    def has_special(self, text: str) -> bool:
        """Whether ``text`` holds special-token text, which the tokenizer would read as control tokens."""
        return self._special is not None and self._special.search(text) is not None

    def tokens(self, text: str, *, plain: bool = False) -> list[int]:
        """``text``'s token ids; ``plain``: special-token text in it (``<|im_end|>``) read as the text
        it is, not as the control token. (Text without any is tokenised alike either way, and asked
        for no more: not every tokenizer takes ``split_special_tokens``.)"""
        if plain and self.has_special(text):
            return list(
                self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
            )
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def truncate(self, text: str) -> tuple[str, bool]:
        """The document cut to ``max_length`` tokens (as capped), and whether it was cut. Tokens as
        ``encode`` reads the document: special-token text as plain text."""
        ids = self.tokens(text, plain=True)
        limit = keep = self.max_length
        if len(ids) <= limit:
            return text, False
        # A cut in the middle of a character decodes to a replacement character, which encodes again
        # as more tokens than it was cut from: one too many is past the model's positions.
        while keep > 0:
            cut: str = self.tokenizer.decode(ids[:keep])
            if len(self.tokens(cut, plain=True)) <= limit:
                return cut, True
            keep -= 1
        return "", True

    def conversations(self, text: str) -> list[tuple[list[dict[str, str]], list[str]]]:
        """(conversation, answers) pairs for one document: one pair, or one per label (multi-label)."""
        p, system_role = self.prompts, self.system_role
        if self.task.type is TaskType.MULTILABEL:
            return [
                (p.messages(self.task, text, self.examples, label, system_role=system_role), [p.YES, p.NO])
                for label in self.task.label_names
            ]
        return [
            (p.messages(self.task, text, self.examples, system_role=system_role), p.candidates(self.task))
        ]

    def encode(
        self, conversation: list[dict[str, str]], replies: Sequence[str]
    ) -> tuple[list[int], list[list[int]]]:
        """The prompt's token ids and each reply's (the reply and the end of the turn)."""
        tokens = self.prompt_tokens(conversation)
        answers = [self.tokens(self.prompts.continuation(self.tokenizer, conversation, r)) for r in replies]
        return tokens, answers

    def prompt_tokens(self, conversation: list[dict[str, str]]) -> list[int]:
        """The rendered prompt's token ids, the last message (the one that holds the document) read as
        plain text: a document that holds ``<|im_end|>\n<|im_start|>assistant\n`` must not end its
        turn and open a fake answer with the template's control tokens.

        A document without special-token text is tokenised with the rest of the prompt, as one string,
        exactly as before. One with it is tokenised as three pieces: up to the end of the last control
        token before the document, the document with the text around it up to the next control token
        (plain), and the rest. The tokenizer splits a text at its control tokens anyway, so the ids of
        the pieces around the document are those it would give; only the document's change."""
        prompt = self.prompts.render(self.tokenizer, conversation)
        content = conversation[-1]["content"]
        if not self.has_special(content):
            return self.tokens(prompt)
        span = self.prompts.content_span(self.tokenizer, conversation, prompt)
        if span is None:
            name = str(getattr(self.tokenizer, "name_or_path", "") or "the tokenizer")
            _warn_once(
                ("unplaced", name),
                "%s: the chat template does not write a message's content as it is, so special-token "
                "text in a document (such as %s) cannot be told from the template's own and is read as "
                "control tokens",
                name,
                next(t for t in self.specials if t in content),
            )
            return self.tokens(prompt)
        # Widened to the control tokens around the document: the text between them is one piece to
        # the tokenizer, whose tokens may run across the document's edges ("\n" and "\nThe").
        start, end = span
        before = [at + len(t) for t in self.specials if (at := prompt.rfind(t, 0, start)) >= 0]
        after = [at for t in self.specials if (at := prompt.find(t, end)) >= 0]
        start, end = max(before, default=0), min(after, default=len(prompt))
        return (
            self.tokens(prompt[:start])
            + self.tokens(prompt[start:end], plain=True)
            + self.tokens(prompt[end:])
        )

    def predict(self, model: Any, texts: Sequence[str], device: torch.device, precision: str) -> Predictions:
        from scalecode_hf.likelihood import score_answers, softmax

        prompts, answers, owners, truncated = [], [], [], []
        for i, text in enumerate(texts):
            shortened, cut = self.truncate(text)
            truncated.append(cut)
            for conversation, replies in self.conversations(shortened):
                tokens, options = self.encode(conversation, replies)
                prompts.append(tokens)
                answers.append(options)
                owners.append(i)
        scores = score_answers(
            model,
            prompts,
            answers,
            pad_id=self.pad_id,
            batch_size=self.params["batch_size"],
            device=device,
            precision=precision,
        )
        probs = [softmax(s) for s in scores]
        extra = {"truncated": np.asarray(truncated)}
        n, labels = len(texts), self.task.label_names
        if self.task.type is TaskType.CLASSIFICATION:
            table = np.vstack(probs) if probs else np.zeros((0, len(labels)))
            return Predictions(
                label=[labels[j] for j in table.argmax(axis=1)],
                confidence=table.max(axis=1),
                probabilities={name: table[:, j] for j, name in enumerate(labels)},
                extra=extra,
            )
        if self.task.type is TaskType.MULTILABEL:
            yes = np.array([p[0] for p in probs]).reshape(n, len(labels))
            present = yes >= self.params["threshold"]
            return Predictions(
                labels=[[labels[j] for j in np.flatnonzero(row)] for row in present],
                confidence=np.where(present, yes, 1 - yes).min(axis=1) if n else np.zeros(0),
                probabilities={name: yes[:, j] for j, name in enumerate(labels)},
                extra=extra,
            )
        points = np.array(self.prompts.rating_points(self.task))
        return Predictions(score=np.array([float(p @ points) for p in probs]), extra=extra)


def weights_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype a model's weights are loaded in for coding in ``precision`` on ``device``.

    On a CPU fp32, whatever the precision: bf16 (or fp16) is autocast's, over fp32 weights, as in the
    encoder backend. Weights in bf16 would round not only the matrix products but the residual stream,
    the norms and the embeddings as well: on SmolLM2-135M they changed 3 of 10 labels that autocast
    over fp32 weights left as fp32 coded them. On a GPU the precision's own (fp32 means fp32): a 7B
    model coded in bf16 takes 14 GB, not the 28 GB of fp32 weights cast op by op."""
    import torch

    from scalecode_hf.devices import autocast_dtype

    if device.type == "cpu":
        return torch.float32
    return autocast_dtype(precision) or torch.float32


def _warn_once(key: tuple[Any, ...], message: str, *args: Any) -> None:
    """A warning given once per process: every Ray actor and training worker builds its own scorer."""
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)


class CausalLMBackend(Backend):
    """A causal language model that codes by comparing the likelihood of each possible answer."""

    name = "causal-lm"
    description = "instruction-tuned causal LM prompted with the codebook; answers scored by likelihood; LoRA"
    task_types = frozenset({TaskType.CLASSIFICATION, TaskType.MULTILABEL, TaskType.REGRESSION})
    trainable = True
    Params = CausalParams
    TrainParams = CausalTrainOptions
    params: CausalParams

    def __init__(self, task: Task, params: Any = None, *, state_dir: str | Path | None = None) -> None:
        super().__init__(task, params, state_dir=state_dir)
        self.source = resolve(
            self.params.model, revision=self.params.revision, trust_remote_code=self.params.trust_remote_code
        )
        self.model: Any = None
        self.scorer: CausalScorer | None = None

    @classmethod
    def check(cls, task: Task, params: BackendParams, *, train: bool) -> None:
        assert isinstance(params, CausalParams)
        resolve(params.model, revision=params.revision, trust_remote_code=params.trust_remote_code)
        # Refused here, before any training: load() could not code with it, after the training ran.
        if params.precision == "int8":
            raise ValueError(
                "precision: int8 is supported by the encoder backend only; use auto, fp32, bf16 or fp16"
            )
        if task.type is TaskType.REGRESSION and task.scale is None:
            raise ValueError(
                "a regression task needs task.scale (min, max) to offer the model its rating points"
            )

    def resources(self) -> Resources:
        gpus = self.params.gpus
        if gpus == "auto":
            from scalecode_hf.encoder import _cluster_has_gpus

            gpus = 1.0 if self.params.device != "cpu" and _cluster_has_gpus() else 0.0
        return Resources(
            cpus=self.params.cpus, gpus=float(gpus), batch_size=max(self.params.batch_size * 4, 32)
        )

    def _location(self) -> tuple[str, dict[str, Any]]:
        if self.state_dir is not None:
            return str(self.state_dir / MODEL_DIR), {"trust_remote_code": self.params.trust_remote_code}
        return self.source.pretrained()

    def load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        from scalecode_hf.devices import choose_device, choose_precision, quiet_libraries

        quiet_libraries()
        self.device = choose_device(self.params.device)
        self.precision = choose_precision(self.params.precision, self.device)
        if self.precision == "int8":
            raise ValueError("precision int8 is supported by the encoder backend only")
        if self.device.type == "cpu":
            torch.set_num_threads(max(1, int(self.params.cpus)))
        location, kwargs = self._location()
        # Whatever the checkpoint holds (transformers keeps its dtype by default), and the same for a
        # merged model and for a base model with an adapter: see weights_dtype.
        dtype = weights_dtype(self.precision, self.device)
        if self.state_dir is not None and (Path(location) / ADAPTER_CONFIG).is_file():
            self.model = self._with_adapter(Path(location), dtype).eval()
        else:
            self.model = AutoModelForCausalLM.from_pretrained(
                location, use_safetensors=True, dtype=dtype, **kwargs
            ).eval()
        self.model.to(self.device)
        self.scorer = self._prompt_scorer(self.model.config)

    def _prompt_scorer(self, config: Any = None) -> CausalScorer:
        """The prompts and answers of the model in use, from its tokenizer and configuration alone
        (no weights); ``config``, the loaded model's, else the base model's is read."""
        from transformers import AutoConfig, AutoTokenizer

        location, kwargs = self._location()
        tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
        if config is None:
            # The base model's: a trained folder may hold only a LoRA adapter, and training changes
            # no model's positions. (Only before training: a loaded model brings its own, and reading
            # the base's again could mean converting a GGUF file in every replica.)
            base, base_kwargs = self.source.pretrained()
            config = AutoConfig.from_pretrained(base, **base_kwargs)
        return CausalScorer(self.task, tokenizer, self.params.model_dump(), config)

    def _with_adapter(self, folder: Path, dtype: torch.dtype) -> Any:
        """The base model (``model:``) with the LoRA adapter saved in ``folder``, merged in memory:
        the weights a merged save would hold, and as fast to run.

        The base is loaded in ``dtype``, the dtype a merged save is loaded in, so that both code alike:
        in fp32 (on a CPU, or precision fp32) the merge is the one a merged save holds (training's
        fp32 master weights) and the weights are the same; in bf16 or fp16 (on a GPU) they differ by
        the rounding of the sum once more, where fp32 weights under autocast would differ by all of
        half precision's rounding of the residual stream."""
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        if not (folder / ADAPTER_WEIGHTS).is_file():  # peft would fall back to a pickled adapter
            raise OSError(f"{folder} holds no {ADAPTER_WEIGHTS}; adapters are read from safetensors only")
        location, kwargs = self.source.pretrained()
        base = AutoModelForCausalLM.from_pretrained(location, use_safetensors=True, dtype=dtype, **kwargs)
        return PeftModel.from_pretrained(base, folder).merge_and_unload()

    def predict_batch(self, texts: Sequence[str]) -> Predictions:
        if not texts:
            if self.task.type is TaskType.CLASSIFICATION:
                return Predictions(label=[])
            return Predictions(labels=[]) if self.task.type is TaskType.MULTILABEL else Predictions(score=[])
        if self.scorer is None:
            self.load()
        assert self.scorer is not None
        return self.scorer.predict(self.model, texts, self.device, self.precision)

    def fit(self, train: GoldSet, eval: GoldSet | None, config: FitConfig) -> FitReport:
        import pyarrow as pa
        import torch

        from scalecode_hf.causal_recipe import CausalRecipe, training_rows
        from scalecode_hf.devices import quiet_libraries
        from scalecode_hf.encoder_model import load_trainable
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
        if options.mode == "head":
            raise ValueError(
                "train.mode: a causal LM has no separate head; use lora (the default here) or full"
            )
        started = time.perf_counter()
        # Training sequences need the tokenizer and the prompts, not the weights: the model is trained
        # by Ray Train's workers, and loaded here (the driver, perhaps a head node without a GPU) only
        # once, to save it. A model already loaded (predictions before training) is not used.
        scorer = self._prompt_scorer()
        # A document shown in every prompt is not trained on (the model would learn to copy the
        # answer above it) nor validated on (its score would be read off the prompt).
        train, shown = without_examples(train, scorer.chosen)
        if eval is not None:
            eval, _ = without_examples(eval, scorer.chosen)
        fit_set, validation, split_note = validation_split(train, eval, options.validation_size, config.seed)
        ids, lengths = training_rows(scorer, fit_set)
        table = pa.table(
            {"input_ids": pa.array(ids, pa.list_(pa.int32())), "answer_length": pa.array(lengths)}
        )
        location, _ = self.source.pretrained()
        recipe_config = {
            "source": asdict(self.source),
            "mode": options.mode,
            "lora": options.lora.model_dump(),
            "task": self.task.model_dump(mode="json"),
            "params": self.params.model_dump(exclude=set(NOT_FOR_TRAINING)),
            OPERATIONAL: {"batch_size": self.params.batch_size},  # validation's passes; not in the claim
            "validation": {"texts": validation.texts, "targets": list(validation.targets)},
        }
        trained = run_training(
            "scalecode_hf.causal_recipe:CausalRecipe",
            recipe_config,
            table,
            options,
            checkpoint_dir=config.checkpoint_dir,
            seed=config.seed,
        )
        trained_on = fit_set
        if options.refit:
            all_ids, all_lengths = training_rows(scorer, train)
            trained = refit_on_all(
                "scalecode_hf.causal_recipe:CausalRecipe",
                recipe_config,
                pa.table(
                    {
                        "input_ids": pa.array(all_ids, pa.list_(pa.int32())),
                        "answer_length": pa.array(all_lengths),
                    }
                ),
                options,
                trained,
                checkpoint_dir=config.checkpoint_dir,
                seed=config.seed,
            )
            trained_on, ids = train, all_ids
        model: Any = CausalRecipe(recipe_config).build(torch.device("cpu"))
        load_trainable(model, trained.best_weights)
        if hasattr(model, "merge_and_unload") and options.merge_lora:
            model = model.merge_and_unload()
        folder = config.output_dir / MODEL_DIR
        # A folder left by an earlier fit must not mix with this one: load() tells an adapter by its config.
        shutil.rmtree(folder, ignore_errors=True)
        # A peft model writes only its adapter (adapter_config.json, adapter_model.safetensors).
        model.save_pretrained(folder, safe_serialization=True)
        scorer.tokenizer.save_pretrained(folder)
        del model
        write_json(config.output_dir / "training.json", trained.history)  # strict JSON: NaN as null
        self.state_dir = config.output_dir
        # The trained model is loaded when this instance is asked to code (predict_batch), not now:
        # the runner codes through Ray actors, each of which loads it from the saved folder.
        self.model = self.scorer = None
        return FitReport(
            seconds=time.perf_counter() - started,
            n_train=len(trained_on),
            n_eval=len(validation),
            trainable_parameters=trained.trainable_parameters,
            total_parameters=trained.total_parameters,
            metrics=validation_metrics(trained),
            notes=[
                f"{epochs_note(options.mode, trained, len(trained_on))}; {len(ids)} training sequences; "
                f"model from {location}",
                *([split_note] if split_note else []),
                *(
                    [
                        f"{shown} training document(s) shown as few-shot examples, or repeating one, "
                        "left out of training and validation"
                    ]
                    if shown
                    else []
                ),
            ],
        )

    def fingerprint(self) -> dict[str, str]:
        if self.state_dir is None:
            return fingerprint(self.source)
        folder = self.state_dir / MODEL_DIR
        prints = fingerprint(ModelSource("folder", str(folder)))
        if (folder / ADAPTER_CONFIG).is_file():  # an adapter codes with the base model's weights too
            prints |= fingerprint(self.source)
        return prints


def without_examples(gold: GoldSet, examples: Sequence[Example]) -> tuple[GoldSet, int]:
    """``gold`` without the documents shown as few-shot examples or repeating one (by gold id, and by
    text: a copy of an example, a retweet or boilerplate, is as much read off the prompt), and how many
    were left out."""
    ids = {e.id for e in examples if e.id is not None}
    # Compared as the leakage check compares texts: case and runs of whitespace aside.
    texts = {" ".join(e.text.split()).casefold() for e in examples}
    keep = [
        i
        for i, (doc_id, text) in enumerate(zip(gold.ids, gold.texts, strict=True))
        if doc_id not in ids and " ".join(text.split()).casefold() not in texts
    ]
    return (gold, 0) if len(keep) == len(gold) else (gold.subset(keep), len(gold) - len(keep))
