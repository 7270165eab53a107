"""Few-shot examples in the causal-LM backend: taken in turn from each label, cut like documents, and
kept out of the documents it trains and validates on; the training loss reads the answer tokens
whatever the model makes of ``logits_to_keep``."""

from __future__ import annotations

from pathlib import Path

import torch

from scalecode import Example, FitConfig, Task, TaskType
from scalecode.testing import sample_gold
from scalecode_hf.causal import CausalLMBackend, CausalScorer
from scalecode_hf.causal_recipe import CausalRecipe
from scalecode_hf.likelihood import answer_logits
from scalecode_hf.options import TrainOptions

TONE = Task(type=TaskType.CLASSIFICATION, labels=["positive", "negative", "neutral"])


def _scorer(tiny_llama: Path, task: Task, **params) -> CausalScorer:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    return CausalScorer(task, tokenizer, {"max_length": 64, "batch_size": 4, "few_shot": None} | params)


def test_few_shot_examples_are_taken_in_turn_from_each_label(tiny_llama):
    """Examples drawn from the gold come grouped by label: the first k of them would show only the
    first labels, and the example just before the document would always be of the last."""
    examples = [
        Example(text=f"{label} text {i}", label=label) for label in TONE.label_names for i in range(3)
    ]
    task = TONE.model_copy(update={"examples": tuple(examples)})
    assert [e.label for e in _scorer(tiny_llama, task, few_shot=4).examples] == [
        "positive",
        "negative",
        "neutral",
        "positive",
    ]
    assert len(_scorer(tiny_llama, task).examples) == 9


def test_a_long_example_is_cut_to_max_length_like_a_document(tiny_llama):
    long = Example(text=" ".join(["word"] * 3000), label="positive")
    task = TONE.model_copy(update={"examples": (long, Example(text="Short and bad.", label="negative"))})
    scorer = _scorer(tiny_llama, task, max_length=32)
    shown = scorer.examples
    assert len(scorer.tokens(shown[0].text)) <= 32 and shown[0].text.startswith("word word")
    assert shown[1].text == "Short and bad."
    assert scorer.max_length == 32  # room left for the document, not taken by the example


def test_documents_shown_as_examples_are_neither_trained_nor_validated_on(
    tiny_llama, tmp_path, fake_training
):
    gold = sample_gold(TONE, n=30)
    shown = [0, 1, 2, 7]  # as the runner draws them: gold documents, by id
    examples = [Example(text=gold.texts[i], label=gold.targets[i], id=gold.ids[i]) for i in shown]
    task = TONE.model_copy(update={"examples": tuple(examples)})
    configs: list[dict] = []
    fake_training(CausalRecipe, configs)
    report = CausalLMBackend(task, {"model": str(tiny_llama), "max_length": 32}).fit(
        gold, None, FitConfig(output_dir=tmp_path, options=TrainOptions(mode="lora", epochs=1))
    )
    validated = set(configs[0]["validation"]["texts"])
    assert not validated & {gold.texts[i] for i in shown}
    assert report.n_train + report.n_eval == len(gold) - len(shown)
    assert any("4 training document(s) shown as few-shot examples" in note for note in report.notes)


class IgnoresLogitsToKeep(torch.nn.Module):
    """A model whose forward takes any keyword and drops ``logits_to_keep`` (as remote code and some
    wrappers do): it gives logits for every position."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, **kwargs):
        kwargs.pop("logits_to_keep", None)
        return self.inner(**kwargs)


def test_the_training_loss_reads_the_answer_tokens_even_where_logits_to_keep_is_ignored(tiny_llama):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    ids = torch.tensor([[0, 0, 5, 6, 7, 8, 9], [11, 12, 13, 14, 15, 16, 17]])
    mask = (torch.arange(7) >= torch.tensor([[2], [0]])).long()
    batch = {"input_ids": ids, "attention_mask": mask, "answer_length": torch.tensor([2, 3])}
    ignoring = IgnoresLogitsToKeep(model)
    assert answer_logits(ignoring, ids, mask, 4).shape[1] == 4
    with torch.no_grad():
        honest = CausalRecipe.loss(None, model, batch)  # type: ignore[arg-type]
        other = CausalRecipe.loss(None, ignoring, batch)  # type: ignore[arg-type]
    assert torch.allclose(honest, other)


def _plain(tiny_llama: Path):
    """SmolLM2's tokenizer without its chat template: a base model's, read as a plain transcript."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    tokenizer.chat_template = None
    return tokenizer


def test_without_a_chat_template_an_answer_ends_as_the_examples_answers_do(tiny_llama):
    """In a plain transcript an example's answer is followed by the next turn; a label scored with
    the eos token after it instead would carry the odds of an end the examples never showed."""
    task = TONE.model_copy(update={"examples": (Example(text="Great fun.", label="positive"),)})
    scorer = CausalScorer(task, _plain(tiny_llama), {"max_length": 64, "batch_size": 4, "few_shot": None})
    [(conversation, replies)] = scorer.conversations("Dull.")
    prompts = scorer.prompts
    ends = [prompts.continuation(scorer.tokenizer, conversation, r) for r in replies]
    assert ends == [f" {label}\n\nUser:" for label in TONE.label_names]
    assert "Assistant: positive\n\nUser: Dull." in prompts.render(scorer.tokenizer, conversation)
    assert prompts.answers_end(scorer.tokenizer)


def test_without_a_chat_template_the_prompt_opens_with_bos_where_the_tokenizer_uses_one(tiny_llama):
    tokenizer = _plain(tiny_llama)
    scorer = CausalScorer(TONE, tokenizer, {"max_length": 64, "batch_size": 4, "few_shot": None})
    [(conversation, replies)] = scorer.conversations("Dull.")
    prompt, _ = scorer.encode(conversation, replies)
    assert prompt[0] != tokenizer.bos_token_id  # SmolLM2's tokenizer opens no text with it
    tokenizer.add_bos_token = True  # as Llama 2's and Mistral's do
    prompt, _ = CausalScorer(TONE, tokenizer, {"max_length": 64, "batch_size": 4}).encode(
        conversation, replies
    )
    assert prompt[0] == tokenizer.bos_token_id and prompt[1] != tokenizer.bos_token_id


def test_an_example_leaves_out_its_own_document_and_those_that_repeat_it():
    """A drawn example is its gold document, by id; a copy of it under another id (a retweet,
    boilerplate) is as much read off the prompt. A codebook example has no id: the documents that
    repeat it go. Case and runs of spaces aside, as the leakage check compares texts."""
    from scalecode import GoldSet
    from scalecode_hf.causal import without_examples

    gold = GoldSet(
        task=TONE,
        ids=["a", "b", "c", "d"],
        texts=["Same text.", "Same  text.", "Codebook one.", "Another."],
        targets=["x"] * 4,
    )
    drawn = Example(text="Same text.", label="positive", id="a")
    codebook = Example(text="codebook one.", label="negative")
    kept, left_out = without_examples(gold, [drawn, codebook])
    assert (kept.ids, left_out) == (["d"], 3)
