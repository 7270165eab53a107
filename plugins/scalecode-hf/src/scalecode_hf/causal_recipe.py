"""How Ray Train workers fine-tune a causal LM on the gold answers (the training.Recipe of causal LMs).

A training sequence is the prompt for a document (as the backend builds it) followed by the gold
answer; the loss is the mean cross-entropy of the answer's tokens, so the model learns to answer, not
to reproduce the prompt.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from scalecode import Example, GoldSet, Task, TaskType
from scalecode_hf.batching import pad
from scalecode_hf.causal import CausalScorer
from scalecode_hf.encoder_model import lora_targets
from scalecode_hf.likelihood import answer_log_probs, answer_logits
from scalecode_hf.models import ModelSource
from scalecode_hf.training import OPERATIONAL, validation_scores


def _as_example(task: Task, text: str, target: Any) -> Example:
    if task.type is TaskType.CLASSIFICATION:
        return Example(text=text, label=target)
    if task.type is TaskType.MULTILABEL:
        return Example(text=text, labels=tuple(target))
    return Example(text=text, score=float(target))


def training_rows(scorer: CausalScorer, gold: GoldSet) -> tuple[list[list[int]], list[int]]:
    """Token ids of prompt + gold answer, and the answer's length, for every training sequence."""
    task, prompts = scorer.task, scorer.prompts
    ids, lengths = [], []
    for text, target in zip(gold.texts, gold.targets, strict=True):
        shortened, _ = scorer.truncate(text)
        example = _as_example(task, shortened, target)
        labels = task.label_names if task.type is TaskType.MULTILABEL else [None]
        for (conversation, _), label in zip(scorer.conversations(shortened), labels, strict=True):
            reply = prompts.answer(task, example, label)
            prompt, (answer,) = scorer.encode(conversation, [reply])
            ids.append(prompt + answer)
            lengths.append(len(answer))
    return ids, lengths


class CausalRecipe:
    """Built on each worker from the plain dict that ``CausalLMBackend.fit`` prepares."""

    def __init__(self, config: dict[str, Any]) -> None:
        from transformers import AutoConfig, AutoTokenizer

        self.config = config
        self.task = Task.model_validate(config["task"])
        self.source = ModelSource(**config["source"])
        location, kwargs = self.source.pretrained()
        # The operational options (validation's batch size) travel apart, outside the checkpoints' claim.
        params = {**config["params"], **config.get(OPERATIONAL, {})}
        self.scorer = CausalScorer(
            self.task,
            AutoTokenizer.from_pretrained(location, **kwargs),
            params,
            AutoConfig.from_pretrained(location, **kwargs),
        )

    def build(self, device: torch.device) -> torch.nn.Module:
        from transformers import AutoModelForCausalLM

        location, kwargs = self.source.pretrained()
        # fp32 master weights whatever the checkpoint holds (transformers loads its dtype by default):
        # AdamW's small updates vanish in bf16 weights; autocast gives the bf16 speed where wanted.
        model: Any = AutoModelForCausalLM.from_pretrained(
            location, use_safetensors=True, dtype=torch.float32, **kwargs
        )
        if self.config["mode"] == "lora":
            from peft import LoraConfig, get_peft_model

            lora = self.config["lora"]
            model = get_peft_model(
                model,
                LoraConfig(
                    r=lora["r"],
                    lora_alpha=lora["alpha"],
                    lora_dropout=lora["dropout"],
                    target_modules=lora_targets(model, lora["target_modules"]),
                    task_type="CAUSAL_LM",
                    bias="none",
                ),
            )
        else:
            for parameter in model.parameters():
                parameter.requires_grad = True
        result: torch.nn.Module = model.to(device)
        return result

    def collate(self, batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
        ids, mask = pad(list(batch["input_ids"]), self.scorer.pad_id, side="left")
        return {
            "input_ids": ids.to(device),
            "attention_mask": mask.to(device),
            "answer_length": torch.as_tensor(np.array(batch["answer_length"])),
        }

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        lengths = batch["answer_length"].tolist()
        ids = batch["input_ids"]
        logits = answer_logits(model, ids, batch["attention_mask"], max(lengths) + 1)
        # The answers' tokens only, as coding scores them: the prompt is given, not learnt.
        mean: torch.Tensor = -answer_log_probs(logits, ids, lengths).sum() / max(sum(lengths), 1)
        return mean

    def validate(self, model: torch.nn.Module, device: torch.device, precision: str) -> dict[str, float]:
        validation = self.config["validation"]
        predicted = self.scorer.predict(model, validation["texts"], device, precision)
        return validation_scores(self.task, predicted, list(validation["targets"]))
