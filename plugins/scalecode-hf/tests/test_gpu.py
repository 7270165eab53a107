"""Checks that need a CUDA GPU; they skip cleanly where there is none (CI has none)."""

from __future__ import annotations

import pytest
import torch

from scalecode import FitConfig, TaskType
from scalecode.testing import sample_gold, sample_task
from scalecode_hf.encoder import EncoderBackend
from scalecode_hf.options import TrainOptions

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.usefixtures("ray_local")
def test_deepspeed_zero2_bf16_fine_tuning_on_cuda(tiny_bert, tmp_path):
    task = sample_task(TaskType.CLASSIFICATION)
    backend = EncoderBackend(task, {"model": str(tiny_bert), "pooling": "mean", "max_length": 32})
    report = backend.fit(
        sample_gold(task, n=80),
        None,
        FitConfig(output_dir=tmp_path, options=TrainOptions(epochs=2, batch_size=8, learning_rate=5e-3)),
    )
    assert "DeepSpeed ZeRO-2" in report.notes[1]  # the default on GPUs
    assert backend.device.type == "cuda"
    assert backend.predict_batch(["good great"]).label[0] in task.label_names
