"""The options of the open-model backends: ``params:`` and ``train:`` in a job file.

Kept apart from the models so that registering the backends and validating a job file import no
torch or transformers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from scalecode import BackendParams, operational

Precision = Literal["auto", "fp32", "bf16", "fp16", "int8"]
DeviceChoice = Literal["auto", "cpu", "cuda"]
Pooling = Literal["auto", "model", "mean", "cls"]
Mode = Literal["full", "head", "lora"]
DEFAULT_LEARNING_RATE = {"full": 5e-5, "head": 1e-3, "lora": 5e-4}


class EncoderParams(BackendParams):
    model: str = Field(description="a model folder, a hub id (org/name) or a path")
    revision: str | None = Field(None, description="hub revision (a commit hash pins it)")
    trust_remote_code: bool = Field(False, description="run the model's own code from the hub")
    pooling: Pooling = "auto"
    max_length: int = Field(
        256,
        ge=8,
        le=8192,
        description="tokens per document; longer ones are truncated (at most the model's own limit)",
    )
    batch_size: int = operational(32, ge=1, description="documents per forward pass when coding")
    precision: Precision = "auto"
    device: DeviceChoice = operational("auto")
    cpus: float = operational(1.0, gt=0, description="CPUs per replica (torch threads)")
    gpus: float | Literal["auto"] = operational(
        "auto", description="GPUs per replica; auto: 1 when the cluster has GPUs"
    )
    threshold: float = Field(
        0.5, gt=0, lt=1, description="multi-label: a label is present above this probability"
    )
    label_map: dict[str, str] | None = Field(
        None, description="untrained classifier: its label -> codebook label"
    )


class LoraOptions(BackendParams):
    r: int = Field(8, ge=1)
    alpha: float = Field(16, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    # default: peft's choice for the architecture (attention), or every linear layer where it has none
    target_modules: list[str] | None = None


class DeepSpeedOptions(BackendParams):
    stage: int = Field(2, ge=0, le=2)  # ZeRO stage; 3 (sharded weights) is not supported yet


class TrainOptions(BackendParams):
    """Options of ``train:`` for open models."""

    mode: Mode = "full"
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(16, ge=1, description="documents per step and worker")
    learning_rate: float | None = Field(None, gt=0, description="default: 5e-5 full, 1e-3 head, 5e-4 lora")
    head_learning_rate: float | None = Field(
        None, gt=0, description="the new head's learning rate (default: learning_rate)"
    )
    layer_decay: float | None = Field(
        None,
        gt=0,
        le=1,
        description="layer-wise learning-rate decay: each layer learns at this factor of the rate of the "
        "one above it (default: one rate for all)",
    )
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_grad_norm: float = Field(1.0, gt=0)
    validation_size: float = Field(0.1, gt=0, lt=1, description="share of the training split held out")
    dropout: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="encoders: every dropout rate of the model and its head (default: the model's own); "
        "0 often helps regression",
    )
    group_by_length: bool = Field(
        True, description="batch documents of similar length together (less padding, faster steps)"
    )
    early_stopping_patience: int = Field(2, ge=0, description="epochs without improvement; 0: never")
    refit: bool = Field(
        False,
        description="after the validation run has chosen the number of epochs, train a fresh model on "
        "every training document (validation share included) for that many epochs and keep it; "
        "doubles the training time",
    )
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps")
    lora: LoraOptions = Field(default_factory=LoraOptions)
    merge_lora: bool = Field(True, description="save LoRA merged into the weights (else as an adapter)")
    workers: int = Field(1, ge=1)
    cpus_per_worker: float | None = Field(None, gt=0)
    gpus_per_worker: float | Literal["auto"] = "auto"
    deepspeed: DeepSpeedOptions | bool | Literal["auto"] = "auto"  # auto: on with GPUs, off on CPUs
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"

    def learning_rate_for_mode(self) -> float:
        return self.learning_rate or DEFAULT_LEARNING_RATE[self.mode]


class CausalTrainOptions(TrainOptions):
    """Options of ``train:`` for causal LMs: LoRA unless the job says otherwise, since fully fine-tuning
    even a small chat model moves every one of its hundreds of millions of weights."""

    mode: Mode = Field(
        "lora", description="lora (the default here) or full; a causal LM has no separate head"
    )
