"""The causal-LM backend across chat templates: ones that refuse a system role, ones that write
nothing after an answer, and models with fewer positions than ``max_length`` asks for."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from scalecode import Task, TaskType
from scalecode.testing import review_task
from scalecode_hf import causal
from scalecode_hf.causal import CausalLMBackend, CausalScorer
from scalecode_hf.testing import ENDLESS_TEMPLATE, GEMMA_TEMPLATE

SENTIMENT = review_task()
REVIEWS = ["A wonderful, moving film.", "Terrible acting and a boring plot."]
PARAMS = {"max_length": 64, "batch_size": 4, "few_shot": None}

# The templates of google/gemma-2b-it and mistralai/Mistral-7B-Instruct-v0.1 (tokenizer_config.json):
# both raise an error for a message whose role is "system".
GEMMA = GEMMA_TEMPLATE
MISTRAL_V01 = (
    "{{ bos_token }}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)
# ChatML without an end to the assistant's turn, as some base models' templates are: the next message
# follows the answer directly.
ENDLESS = ENDLESS_TEMPLATE

# A template that renders user and assistant turns only, and leaves any other message out silently.
SILENT = (
    "{% for message in messages %}{% if message['role'] in ['user', 'assistant'] %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _tokenizer(folder: Path, template: str | None = None) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if template is not None:
        tokenizer.chat_template = template
    return tokenizer


def _prompt(scorer: CausalScorer, text: str) -> str:
    [(conversation, _)] = scorer.conversations(text)
    return str(scorer.prompts.render(scorer.tokenizer, conversation))


# --- Templates that refuse a system role -------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "user_turn"),
    [(GEMMA, "<start_of_turn>user\n"), (MISTRAL_V01, "[INST] "), (SILENT, "<|im_start|>user\n")],
    ids=["gemma", "mistral", "silently-dropped"],
)
def test_a_template_that_refuses_the_system_role_gets_the_instructions_in_the_first_user_turn(
    tiny_llama, template, user_turn
):
    scorer = CausalScorer(SENTIMENT, _tokenizer(tiny_llama, template), PARAMS)
    prompt = _prompt(scorer, "Great fun.")
    # The instructions open the first user turn, ahead of the first example, and come only once.
    assert f"{user_turn}Classify the sentiment of the movie review." in prompt
    assert prompt.count("Classify the sentiment") == 1
    assert "- positive: the reviewer liked the film" in prompt
    assert prompt.index("- negative: the reviewer disliked") < prompt.index("A delight from start to finish.")
    assert prompt.index("A delight") < prompt.index("Great fun.")


def test_a_model_whose_template_refuses_the_system_role_codes_every_document(tiny_llama, tmp_path):
    folder = shutil.copytree(tiny_llama, tmp_path / "gemma-like")
    _tokenizer(tiny_llama, GEMMA).save_pretrained(folder)
    out = CausalLMBackend(SENTIMENT, {"model": str(folder), "max_length": 64}).predict_batch(REVIEWS)
    assert out.label is not None and len(out.label) == 2 and set(out.label) <= {"positive", "negative"}


def test_whether_a_template_takes_the_system_role_is_asked_once_per_tokenizer(tiny_llama):
    from jinja2.exceptions import TemplateError

    tokenizer = _tokenizer(tiny_llama, GEMMA)
    render = tokenizer.apply_chat_template
    refused: list[str] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            return render(*args, **kwargs)
        except TemplateError as error:
            refused.append(str(error))
            raise

    tokenizer.apply_chat_template = counted
    scorer = CausalScorer(SENTIMENT, tokenizer, PARAMS)
    for text in REVIEWS * 3:
        for conversation, replies in scorer.conversations(text):
            scorer.encode(conversation, replies)
    assert refused == ["System role not supported"]


def test_a_template_that_takes_the_system_role_renders_as_before(tiny_llama):
    """SmolLM2's ChatML keeps its system turn: the prompt is the template's rendering of the
    system, example and document messages, unchanged."""
    tokenizer = _tokenizer(tiny_llama)
    scorer = CausalScorer(SENTIMENT, tokenizer, PARAMS)
    [(conversation, _)] = scorer.conversations("Great fun.")
    assert [m["role"] for m in conversation] == ["system", "user", "assistant", "user", "assistant", "user"]
    expected = tokenizer.apply_chat_template(
        scorer.prompts.messages(SENTIMENT, "Great fun.", SENTIMENT.examples),
        tokenize=False,
        add_generation_prompt=True,
    )
    assert _prompt(scorer, "Great fun.") == expected
    assert expected.startswith("<|im_start|>system\nClassify the sentiment")


# --- Answers that are prefixes of others -------------------------------------------------------------

# "Social" is one token and "Socialist" is "Social" + "ist" in SmolLM2's tokenizer: scored without an
# end, P("Socialist") = P("Social") x P("ist" | "Social") can never beat P("Social").
PARTIES = Task(type=TaskType.CLASSIFICATION, labels=["Social", "Socialist"])


class Bigram(torch.nn.Module):
    """A language model that sees only the last token: after each token in ``follows`` it is all but
    sure of the next one; every other continuation is equally (un)likely."""

    def __init__(self, vocab: int, follows: dict[int, int]) -> None:
        super().__init__()
        self.vocab, self.follows = vocab, follows

    def forward(self, input_ids: torch.Tensor, logits_to_keep: int = 0, **_: Any) -> SimpleNamespace:
        ids = input_ids[:, -logits_to_keep:] if logits_to_keep else input_ids
        logits = torch.zeros(*ids.shape, self.vocab)
        for before, after in self.follows.items():
            logits[..., after] += 20.0 * (ids == before)
        return SimpleNamespace(logits=logits)


def _token(tokenizer: Any, text: str) -> int:
    [token] = tokenizer(text, add_special_tokens=False)["input_ids"]
    return int(token)


def test_an_answer_ends_with_the_eos_token_where_the_template_writes_no_end_of_turn(tiny_llama):
    tokenizer = _tokenizer(tiny_llama, ENDLESS)
    scorer = CausalScorer(PARTIES, tokenizer, PARAMS)
    [(conversation, replies)] = scorer.conversations("We will nationalise the railways.")
    _, answers = scorer.encode(conversation, replies)
    social, ist = _token(tokenizer, "Social"), _token(tokenizer, "ist")
    assert answers == [[social, tokenizer.eos_token_id], [social, ist, tokenizer.eos_token_id]]
    # A template's own end of turn is kept as it is, and no eos is added after it.
    chatml = CausalScorer(PARTIES, _tokenizer(tiny_llama), PARAMS)
    [(conversation, _)] = chatml.conversations("x")
    assert chatml.prompts.continuation(chatml.tokenizer, conversation, "Social") == "Social<|im_end|>\n"


def test_a_label_that_is_a_prefix_of_another_does_not_win_for_being_shorter(tiny_llama):
    """The model is all but sure that "Social" goes on to "Socialist" and that the answer then ends:
    Socialist is its answer."""
    tokenizer = _tokenizer(tiny_llama, ENDLESS)
    social, ist = _token(tokenizer, "Social"), _token(tokenizer, "ist")
    model = Bigram(len(tokenizer), {social: ist, ist: tokenizer.eos_token_id})
    scorer = CausalScorer(PARTIES, tokenizer, PARAMS)
    out = scorer.predict(model, ["We will nationalise the railways."], torch.device("cpu"), "fp32")
    assert out.label == ["Socialist"]
    assert out.probabilities is not None and out.probabilities["Socialist"][0] > 0.99


def test_answers_that_nothing_ends_are_warned_about(tiny_llama, caplog, monkeypatch):
    monkeypatch.setattr(
        causal, "_warned", set(), raising=False
    )  # warned once per process: maybe by another test
    tokenizer = _tokenizer(tiny_llama, ENDLESS)
    tokenizer.eos_token = None
    with caplog.at_level("WARNING"):
        CausalScorer(PARTIES, tokenizer, PARAMS)
        CausalScorer(PARTIES, tokenizer, PARAMS)
    warnings = [r.getMessage() for r in caplog.records if "prefix" in r.getMessage()]
    assert len(warnings) == 1 and "no eos_token" in warnings[0]
    caplog.clear()
    with caplog.at_level("WARNING"):
        CausalScorer(PARTIES, _tokenizer(tiny_llama, ENDLESS), PARAMS)  # the eos ends the answers
    assert "prefix" not in caplog.text


# --- max_length beyond the model's positions ---------------------------------------------------------


def _tiny_gpt2(tiny_llama: Path, folder: Path, positions: int) -> Path:
    """A 1-layer GPT-2 with SmolLM2's tokenizer: learned positions, so a longer sequence fails."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = _tokenizer(tiny_llama)
    tokenizer.save_pretrained(folder)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=positions,
        n_embd=16,
        n_layer=1,
        n_head=2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def test_max_length_beyond_the_models_positions_is_cut_to_fit_them(tiny_llama, tmp_path, caplog, monkeypatch):
    """A model of 256 positions, asked for documents of 512 tokens: documents are cut so that the
    prompt, the document and the answer fit, with a warning, rather than failing whole batches."""
    from scalecode import GoldSet
    from scalecode_hf.causal_recipe import training_rows

    monkeypatch.setattr(causal, "_warned", set(), raising=False)
    folder = _tiny_gpt2(tiny_llama, tmp_path / "gpt2", positions=256)
    backend = CausalLMBackend(SENTIMENT, {"model": str(folder), "max_length": 512})
    long_text = "good " * 600
    with caplog.at_level("WARNING"):
        out = backend.predict_batch([long_text, "bad"])
    assert out.label is not None and set(out.label) <= {"positive", "negative"}
    assert out.extra["truncated"].tolist() == [True, False]
    assert "max_length 512" in caplog.text and "256 positions" in caplog.text
    # Training sequences are cut the same way.
    assert backend.scorer is not None
    ids, _ = training_rows(
        backend.scorer, GoldSet(SENTIMENT, ["a", "b"], [long_text, "bad"], ["positive", "negative"])
    )
    assert max(len(row) for row in ids) <= 256
    np.testing.assert_allclose(out.probabilities["positive"] + out.probabilities["negative"], 1.0)


def test_a_prompt_too_long_for_the_model_even_without_the_document_is_refused(tiny_llama, tmp_path):
    folder = _tiny_gpt2(tiny_llama, tmp_path / "gpt2", positions=32)
    with pytest.raises(ValueError, match="few_shot"):
        CausalLMBackend(SENTIMENT, {"model": str(folder), "max_length": 64}).predict_batch(["bad"])


def test_a_loaded_model_caps_documents_with_its_own_configuration(tiny_llama, tmp_path, monkeypatch):
    """Reading the base model's configuration again in each replica could mean converting a GGUF
    file in every one of them, or reaching the hub for a model already loaded from a run directory."""
    folder = _tiny_gpt2(tiny_llama, tmp_path / "gpt2", positions=256)
    given: list[object] = []
    build = causal.CausalScorer.__init__

    def spy(self, task, tokenizer, params, config=None):  # type: ignore[no-untyped-def]
        given.append(config)
        build(self, task, tokenizer, params, config)

    monkeypatch.setattr(causal.CausalScorer, "__init__", spy)
    backend = CausalLMBackend(SENTIMENT, {"model": str(folder), "max_length": 512})
    backend.load()
    assert backend.model is not None and given == [backend.model.config]
    assert given[0] is backend.model.config
    assert backend.scorer is not None and backend.scorer.max_length < 256
