"""How Ray Train workers build, batch, train and score an encoder (the training.Recipe of encoders)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from scalecode import Task, TaskType
from scalecode_hf.batching import forward_sorted, pad
from scalecode_hf.encoder import to_predictions
from scalecode_hf.encoder_model import apply_mode, load_encoder
from scalecode_hf.models import ModelSource
from scalecode_hf.training import OPERATIONAL, validation_scores


class EncoderRecipe:
    """Built on each worker from the plain dict that ``EncoderBackend.fit`` prepares."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.task = Task.model_validate(config["task"])

    def build(self, device: torch.device) -> torch.nn.Module:
        c = self.config
        model = load_encoder(
            ModelSource(**c["source"]),
            c["pooling"],
            c["num_outputs"],
            problem_type=c["problem_type"],
            labels=c["labels"],
            dropout=c.get("dropout"),
        )
        return apply_mode(model, c["mode"], c["lora"]).to(device)

    def collate(self, batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
        ids, mask = pad(list(batch["input_ids"]), self.config["pad_id"])
        # Copies: Ray hands out read-only arrays, which torch must not wrap.
        label = np.stack(list(batch["label"])) if batch["label"].dtype == object else np.array(batch["label"])
        dtype = torch.long if self.task.type is TaskType.CLASSIFICATION else torch.float32
        return {
            "input_ids": ids.to(device),
            "attention_mask": mask.to(device),
            "label": torch.as_tensor(label, dtype=dtype).to(device),
            "row": torch.as_tensor(np.array(batch["row"])),
        }

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = model(batch["input_ids"], batch["attention_mask"], rows=batch["row"]).float()
        if self.task.type is TaskType.CLASSIFICATION:
            return torch.nn.functional.cross_entropy(logits, batch["label"])
        if self.task.type is TaskType.MULTILABEL:
            return torch.nn.functional.binary_cross_entropy_with_logits(logits, batch["label"])
        return torch.nn.functional.mse_loss(logits[:, 0], batch["label"])

    def validate(self, model: torch.nn.Module, device: torch.device, precision: str) -> dict[str, float]:
        c = self.config
        validation = c["validation"]
        outputs = forward_sorted(
            model,
            validation["input_ids"],
            batch_size=c[OPERATIONAL]["batch_size"],
            pad_id=c["pad_id"],
            device=device,
            precision=precision,
        )
        # The threshold coding will use: a best epoch chosen at another would be chosen for codes
        # the model never gives.
        predicted = to_predictions(outputs, self.task, c, c.get("threshold", 0.5))
        return validation_scores(self.task, predicted, list(validation["targets"]))
