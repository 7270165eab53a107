"""An encoder with one output per label (or one for a score), in the three fine-tuning modes.

Pooling: ``model`` uses the checkpoint's own classification head (``AutoModelForSequenceClassification``:
the model's pooler and classifier, which is also how an already fine-tuned classifier from the hub is
used as it is); ``mean`` and ``cls`` put a linear head on the mean of the token embeddings or on the
first token. ``auto`` picks ``mean`` for sentence-transformers models trained with mean pooling (such as
all-MiniLM-L6-v2), so that a head-only baseline reads the embedding the model was trained to produce.

Modes: ``full`` trains every weight; ``head`` freezes the encoder and trains the head; ``lora`` adds
low-rank adapters (peft) to the encoder's attention and trains them with the head.

A trained model is saved as ``encoder/`` (a normal Hugging Face folder, with its tokenizer),
``head.safetensors`` when the head is scalecode's, and ``scalecode-encoder.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from scalecode_hf.models import ModelSource

Pooling = Literal["auto", "model", "mean", "cls"]
Mode = Literal["full", "head", "lora"]
CONFIG_FILE = "scalecode-encoder.json"


def detect_pooling(folder: str) -> str:
    """The pooling a sentence-transformers folder declares (mean or cls), else the model's own head."""
    pooling_config = Path(folder) / "1_Pooling" / "config.json"
    if pooling_config.is_file():
        declared = json.loads(pooling_config.read_text())
        if declared.get("pooling_mode_mean_tokens"):
            return "mean"
        if declared.get("pooling_mode_cls_token"):
            return "cls"
    return "model"


class EncoderModel(nn.Module):
    """Logits (documents x outputs) from token ids, whatever the pooling."""

    def __init__(self, encoder: Any, pooling: str, num_outputs: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder: Any = encoder  # a transformers model: typed loosely, as transformers is
        self.pooling = pooling
        self.num_outputs = num_outputs
        self.head: nn.Linear | None = None
        self.dropout = nn.Dropout(dropout)
        if pooling != "model":
            hidden = int(encoder.config.hidden_size)
            self.head = nn.Linear(hidden, num_outputs)
        # Head-only training with scalecode's head: the frozen encoder's pooled output of a training
        # document never changes, so it is computed once (dropout off) and reused every epoch.
        self.cache_features = False
        self._features: dict[int, torch.Tensor] = {}

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits; ``rows`` (a training document's index) lets head-only training reuse its features."""
        if self.head is None:
            logits: torch.Tensor = self.encoder(input_ids=input_ids, attention_mask=attention_mask).logits
            return logits
        if self.cache_features and rows is not None:
            pooled = self._cached_pool(input_ids, attention_mask, rows.tolist())
        else:
            pooled = self._pool(input_ids, attention_mask)
        out: torch.Tensor = self.head(self.dropout(pooled))
        return out

    def _pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "mean":
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled: torch.Tensor = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            return pooled
        first: torch.Tensor = hidden[:, 0]
        return first

    def _cached_pool(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, rows: list[int]
    ) -> torch.Tensor:
        missing = [i for i, row in enumerate(rows) if row not in self._features]
        if missing:
            was_training = self.encoder.training
            self.encoder.eval()
            with torch.no_grad():
                pooled = self._pool(input_ids[missing], attention_mask[missing])
            self.encoder.train(was_training)
            for i, features in zip(missing, pooled, strict=True):
                self._features[rows[i]] = features
        return torch.stack([self._features[row] for row in rows])

    def head_parameters(self) -> list[nn.Parameter]:
        """The weights outside the pretrained body: scalecode's head, or every layer the model's own
        classification class adds around its base model (DistilBERT's pre_classifier and classifier)."""
        return _head_parameters(self)

    def body(self) -> nn.Module:
        """The transformer without the task head: what ``head`` mode freezes and ``lora`` adapts."""
        if self.head is None:
            body: nn.Module = getattr(self.encoder, "base_model")  # noqa: B009 - a transformers property
            return body
        encoder: nn.Module = self.encoder
        return encoder


def load_encoder(
    source: ModelSource,
    pooling: str,
    num_outputs: int,
    *,
    problem_type: str,
    labels: list[str] | None = None,
    dropout: float | None = None,
) -> EncoderModel:
    """Build the model from a checkpoint; a new head is initialised at random.

    ``dropout`` replaces every dropout rate the model's config has (and the head's); None keeps them.
    """
    from transformers import AutoModelForSequenceClassification

    location, kwargs = source.pretrained()
    if dropout is not None:
        kwargs = {**kwargs, **dropout_overrides(location, kwargs, dropout)}
    if pooling == "auto":
        pooling = detect_pooling(location) if source.kind == "folder" else "model"
    if pooling == "model":
        extra: dict[str, Any] = {}
        if labels:
            extra = {"id2label": dict(enumerate(labels)), "label2id": {n: i for i, n in enumerate(labels)}}
        encoder = AutoModelForSequenceClassification.from_pretrained(
            location,
            num_labels=num_outputs,
            problem_type=problem_type,
            ignore_mismatched_sizes=True,
            use_safetensors=True,
            dtype=torch.float32,  # fp32 weights whatever the checkpoint holds; autocast narrows them
            **kwargs,
            **extra,
        )
    else:
        encoder = _base_model(location, kwargs)
    return EncoderModel(encoder, pooling, num_outputs, dropout=0.1 if dropout is None else dropout)


def dropout_overrides(location: str, kwargs: dict[str, Any], rate: float) -> dict[str, float]:
    """``{name: rate}`` for each dropout setting of a model's config, whatever the architecture calls it
    (BERT: hidden_dropout_prob, attention_probs_dropout_prob, classifier_dropout; DistilBERT: dropout,
    attention_dropout, seq_classif_dropout)."""
    from transformers import AutoConfig

    settings = AutoConfig.from_pretrained(location, **kwargs).to_dict()
    return {
        name: rate
        for name, value in settings.items()
        if "dropout" in name
        and (value is None or (isinstance(value, int | float) and not isinstance(value, bool)))
    }


def _base_model(location: str, kwargs: dict[str, Any]) -> nn.Module:
    from transformers import AutoModel

    try:  # the pooler is unused with our head; without it, DDP has no parameters without gradients
        model: nn.Module = AutoModel.from_pretrained(
            location, add_pooling_layer=False, use_safetensors=True, dtype=torch.float32, **kwargs
        )
    except TypeError:  # architectures without a pooler take no such argument
        model = AutoModel.from_pretrained(location, use_safetensors=True, dtype=torch.float32, **kwargs)
    return model


def apply_mode(model: EncoderModel, mode: str, lora: dict[str, Any] | None = None) -> EncoderModel:
    """Make the right weights trainable for ``full``, ``head`` or ``lora``."""
    if mode == "full":
        for parameter in model.parameters():
            parameter.requires_grad = True
        return model
    body = model.body()
    for parameter in body.parameters():
        parameter.requires_grad = False
    if mode == "head":
        model.cache_features = model.head is not None
        return model
    from peft import LoraConfig, get_peft_model

    settings = dict(lora or {})
    config = LoraConfig(
        r=settings.get("r", 8),
        lora_alpha=settings.get("alpha", 16),
        lora_dropout=settings.get("dropout", 0.1),
        target_modules=lora_targets(body, settings.get("target_modules")),
        bias="none",
    )
    _set_body(model, get_peft_model(body, config))
    for parameter in _head_parameters(model):
        parameter.requires_grad = True
    return model


def lora_targets(model: nn.Module, asked: list[str] | None) -> list[str] | str | None:
    """The modules LoRA adapts: those ``train.lora.target_modules`` names; else peft's choice for the
    architecture (None), where it has one; else every linear layer but the output layer ("all-linear"),
    since without a choice peft would fail inside a training worker. An encoder's body holds no head,
    so its head is trained whole, never adapted."""
    if asked:
        return asked
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_CHOICES

    model_type = getattr(getattr(model, "config", None), "model_type", None)
    return None if model_type in PEFT_CHOICES else "all-linear"


def _set_body(model: EncoderModel, body: nn.Module) -> None:
    if model.head is None:  # the model's own classifier wraps its body under base_model_prefix
        setattr(model.encoder, model.encoder.base_model_prefix, body)
    else:
        model.encoder = body


def _head_parameters(model: EncoderModel) -> list[nn.Parameter]:
    """The task head: scalecode's linear head, or the model's classifier outside its body."""
    if model.head is not None:
        return list(model.head.parameters())
    body_ids = {id(p) for p in model.body().parameters()}
    return [p for p in model.encoder.parameters() if id(p) not in body_ids]


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trained weights (what a checkpoint must keep), detached and on the CPU."""
    return {
        name: parameter.detach().to("cpu").contiguous().clone()
        for name, parameter in model.named_parameters()
        if parameter.requires_grad
    }


def load_trainable(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    missing = [name for name, p in model.named_parameters() if p.requires_grad and name not in state]
    if missing:
        raise ValueError(f"checkpoint lacks trained weights {missing[:3]}...")
    model.load_state_dict(state, strict=False)


def save_encoder(
    model: EncoderModel, folder: Path, meta: dict[str, Any], tokenizer: Any, *, merge: bool = True
) -> None:
    """Write the final model. LoRA is merged into the weights unless ``merge`` is False, in which case
    the adapter is saved on its own (peft format) beside the head, and loading needs the base model."""
    folder.mkdir(parents=True, exist_ok=True)
    body = model.body()
    tokenizer.save_pretrained(folder / "tokenizer")
    is_lora = hasattr(body, "merge_and_unload")
    if is_lora and not merge:
        body.save_pretrained(folder / "adapter")  # type: ignore[operator]
        head = {
            name: p.detach().cpu().contiguous()
            for name, p in model.named_parameters()
            if p.requires_grad and "lora_" not in name
        }
        save_file(head, folder / "head.safetensors")
        meta = {**meta, "lora": "adapter"}
    else:
        if is_lora:
            _set_body(model, body.merge_and_unload())  # type: ignore[operator]
            meta = {**meta, "lora": "merged"}
        model.encoder.save_pretrained(folder / "encoder", safe_serialization=True)
        tokenizer.save_pretrained(folder / "encoder")
        if model.head is not None:
            save_file(
                {k: v.contiguous() for k, v in model.head.state_dict().items()}, folder / "head.safetensors"
            )
    (folder / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def read_encoder(
    folder: Path, trust_remote_code: bool = False, base: ModelSource | None = None
) -> tuple[EncoderModel, dict[str, Any]]:
    """Load a model saved by ``save_encoder``.

    An adapter (``merge_lora: false``) is loaded over ``base``, the model the job names; the path
    recorded at training is the fallback only, since a project moved elsewhere no longer has it.
    """
    from transformers import AutoModelForSequenceClassification

    meta = json.loads((folder / CONFIG_FILE).read_text())
    if meta.get("lora") == "adapter":
        from peft import PeftModel

        if not (folder / "adapter" / "adapter_model.safetensors").is_file():  # peft would unpickle a .bin
            raise OSError(
                f"{folder / 'adapter'} holds no adapter_model.safetensors; "
                "adapters are read from safetensors only"
            )
        source = base or ModelSource(**meta["source"])
        model = load_encoder(
            source,
            meta["pooling"],
            meta["num_outputs"],
            problem_type=meta["problem_type"],
            labels=meta.get("labels"),
        )
        _set_body(model, PeftModel.from_pretrained(model.body(), folder / "adapter"))
        model.load_state_dict(load_file(folder / "head.safetensors"), strict=False)
        return model, meta
    location = str(folder / "encoder")
    if meta["pooling"] == "model":
        encoder = AutoModelForSequenceClassification.from_pretrained(
            location, use_safetensors=True, trust_remote_code=trust_remote_code
        )
    else:
        encoder = _base_model(location, {"trust_remote_code": trust_remote_code})
    model = EncoderModel(encoder, meta["pooling"], meta["num_outputs"])
    if model.head is not None:
        model.head.load_state_dict(load_file(folder / "head.safetensors"))
    return model, meta
