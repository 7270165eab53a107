"""Reading back a training checkpoint's files without running code.

``torch.load(weights_only=False)`` unpickles whatever a file names, so a file planted in (or swapped
into) a run's checkpoint folder would run code in every training worker that resumes from it.
DeepSpeed's own checkpoint engine loads that way. Every checkpoint file scalecode reads is loaded
with ``weights_only=True`` instead: tensors, plain values, and the few plain classes DeepSpeed's ZeRO
stages 0-2 write beside them (a loss scaler, a stage number, the offsets of flattened parameters).
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint file holds more than tensors and plain values, so it was not loaded."""


def load_plain(path: str | Path, map_location: Any = None, allow: Sequence[type] = ()) -> Any:
    """``torch.load`` of tensors and plain values only (and the classes in ``allow``)."""
    try:
        with torch.serialization.safe_globals(list(allow)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise UnsafeCheckpointError(
            f"{path}: this checkpoint file holds more than tensors and plain values, so it was not "
            f"loaded (loading it could run code). Delete the checkpoint folder to train afresh. "
            f"({reason})"
        ) from None


def deepspeed_classes() -> list[type]:
    """The classes DeepSpeed (ZeRO 0-2, fp32, bf16 or fp16) pickles beside tensors in its checkpoints."""
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]


def load_deepspeed_checkpoints_plainly(engine: Any) -> None:
    """Make a DeepSpeed engine read its checkpoints with ``load_plain``.

    Only the engine's ``load`` changes: it writes checkpoints as before, and reads back what it wrote.
    """
    from deepspeed.runtime.checkpoint_engine import TorchCheckpointEngine

    current = engine.checkpoint_engine
    if type(current) is not TorchCheckpointEngine:  # another engine (a decoupled writer...) is not ours
        raise RuntimeError(f"unexpected DeepSpeed checkpoint engine {type(current).__name__}")
    allow = deepspeed_classes()

    class PlainLoads(TorchCheckpointEngine):  # type: ignore[misc]
        def load(self, path: str, map_location: Any = None) -> Any:
            return load_plain(path, map_location, allow)

    plain = PlainLoads.__new__(PlainLoads)
    plain.__dict__.update(current.__dict__)  # its configuration (serialisation format) as it was
    engine.checkpoint_engine = plain
