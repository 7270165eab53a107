"""Where models come from: folders, GGUF files and hub ids; safetensors only; remote code off."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from scalecode import Task, TaskType
from scalecode_hf.encoder import EncoderBackend
from scalecode_hf.models import fingerprint, gguf_folder, resolve

TASK = Task(type=TaskType.CLASSIFICATION, labels=["positive", "negative"])


def test_a_folder_a_gguf_file_and_a_hub_id(tiny_bert, smollm2):
    assert resolve(str(tiny_bert)).kind == "folder"
    assert resolve(str(smollm2)).kind == "gguf"
    hub = resolve("sentence-transformers/all-MiniLM-L6-v2", revision="e4ce9877")
    assert hub.kind == "hub"
    assert hub.pretrained() == (
        "sentence-transformers/all-MiniLM-L6-v2",
        {"trust_remote_code": False, "revision": "e4ce9877"},
    )


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("missing.gguf", "GGUF file missing.gguf does not exist"),
        ("./not/a/model", "neither a model folder"),
        ("bad id with spaces", "neither a model folder"),
    ],
)
def test_what_is_not_a_model_is_named(model, message):
    with pytest.raises(ValueError, match=message):
        resolve(model)


def test_a_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a model folder"):
        resolve(str(tmp_path))


def test_remote_code_is_off_unless_asked(tiny_bert):
    assert EncoderBackend(TASK, {"model": str(tiny_bert)}).source.trust_remote_code is False
    assert EncoderBackend(TASK, {"model": str(tiny_bert), "trust_remote_code": True}).source.trust_remote_code


def test_pickled_weights_are_never_loaded(tiny_bert, tmp_path):
    """A model folder with only pytorch_model.bin (a pickle) is refused, not unpickled."""
    import torch
    from transformers import AutoModel

    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_bert / "config.json").read_text())
    torch.save(AutoModel.from_pretrained(tiny_bert).state_dict(), folder / "pytorch_model.bin")
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        if (tiny_bert / name).exists():
            (folder / name).write_bytes((tiny_bert / name).read_bytes())
    backend = EncoderBackend(
        TASK, {"model": str(folder), "pooling": "model", "label_map": {"LABEL_0": "positive"}}
    )
    with pytest.raises(OSError, match="safetensors"):
        backend.load()


def test_gguf_is_converted_once_and_reused(smollm2):
    first = gguf_folder(smollm2)
    started = time.perf_counter()
    assert gguf_folder(smollm2) == first
    assert time.perf_counter() - started < 5  # a hash and a look, no conversion
    assert (first / "model.safetensors").exists()
    assert "quantization_config" not in (first / "config.json").read_text()


def test_fingerprint_hashes_the_weights(tiny_bert):
    prints = fingerprint(resolve(str(tiny_bert)))
    assert list(prints) == [str(Path(tiny_bert).resolve() / "model.safetensors")]
    assert len(next(iter(prints.values()))) == 64


def test_where_and_how_fast_a_model_codes_is_operational_but_not_its_precision():
    """A run directory resumes on a machine with other devices or CPUs; not in another precision."""
    from scalecode_hf.causal import CausalParams
    from scalecode_hf.options import EncoderParams, TrainOptions

    for params in (EncoderParams, CausalParams):
        assert params.operational_options() == {"batch_size", "device", "cpus", "gpus"}
    assert TrainOptions.operational_options() == frozenset()  # workers and batches change the training
