"""Training through Ray Train: two CPU workers with DeepSpeed ZeRO-2, and a killed run that resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from scalecode import FitConfig, FitReport, GoldSet, TaskType
from scalecode.testing import sample_gold, sample_task
from scalecode_hf.encoder import EncoderBackend
from scalecode_hf.options import TrainOptions


def _fit_scores(
    model: Path, out: Path, n: int = 80, **options: Any
) -> tuple[EncoderBackend, FitReport, GoldSet]:
    """A tiny encoder fitted to ``n`` sample scores (state in out/state, checkpoints in out/checkpoints)."""
    task = sample_task(TaskType.REGRESSION)
    backend = EncoderBackend(task, {"model": str(model), "pooling": "mean", "max_length": 32})
    gold = sample_gold(task, n=n)
    train = TrainOptions(batch_size=8, learning_rate=5e-3, early_stopping_patience=0, **options)
    config = FitConfig(output_dir=out / "state", checkpoint_dir=out / "checkpoints", options=train)
    return backend, backend.fit(gold, None, config), gold


@pytest.mark.usefixtures("ray_local")
def test_two_cpu_workers_with_deepspeed_zero2(tiny_bert, tmp_path):
    backend, report, _ = _fit_scores(tiny_bert, tmp_path, workers=2, deepspeed={"stage": 2}, epochs=2)
    assert "2 worker(s), DeepSpeed ZeRO-2" in report.notes[1]
    history = json.loads((tmp_path / "state" / "training.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(h["train_loss"] is not None for h in history)
    assert (tmp_path / "checkpoints" / "train").is_dir()  # Ray Train's run folder, where resumption reads
    assert backend.predict_batch(["good great", "terrible crisis"]).score is not None


@pytest.mark.usefixtures("ray_local")
def test_with_deepspeed_each_epoch_ends_with_a_step_of_its_own(tiny_bert, tmp_path):
    """An epoch's last micro-batches, fewer than gradient_accumulation_steps, are a step of their own
    (as without DeepSpeed), not added to the next epoch's first or, after the last epoch, dropped."""
    _, report, _ = _fit_scores(
        tiny_bert, tmp_path, deepspeed={"stage": 2}, epochs=2, gradient_accumulation_steps=4
    )
    micro_batches = -(-report.n_train // 8)
    assert micro_batches % 4, "the test needs an epoch that ends part-way through an accumulation"
    per_epoch = -(-micro_batches // 4)
    history = json.loads((tmp_path / "state" / "training.json").read_text())
    assert [h["optimizer_steps"] for h in history] == [per_epoch, 2 * per_epoch]


@pytest.mark.usefixtures("ray_local")
def test_a_run_restored_after_it_had_stopped_trains_no_further(tiny_bert, tmp_path):
    """As after a kill between the last checkpoint and the saved model: the rerun restores a run
    that had already stopped (here at max_steps, in its first epoch) and must not train on."""
    _fit_scores(tiny_bert, tmp_path, epochs=3, max_steps=2)
    _, again, _ = _fit_scores(tiny_bert, tmp_path, epochs=3, max_steps=2)
    history = json.loads((tmp_path / "state" / "training.json").read_text())
    assert [h["epoch"] for h in history] == [1]
    assert "best 1" in again.notes[0]


class _Planted:
    """What a pickle planted in a checkpoint folder could do when unpickled: here, make a folder."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (str(self.marker),)


@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize(
    ("deepspeed", "planted_in"),
    [({"stage": 2}, "deepspeed/state/*optim_states.pt"), (False, "optimizer.pt")],
    ids=["deepspeed", "torch"],
)
def test_resuming_refuses_a_checkpoint_file_that_would_run_code(tiny_bert, tmp_path, deepspeed, planted_in):
    options = {"epochs": 1, "deepspeed": deepspeed}
    _fit_scores(tiny_bert, tmp_path, n=40, **options)
    _, again, _ = _fit_scores(tiny_bert, tmp_path, n=40, **options)  # restores its own checkpoint
    assert "best 1" in again.notes[0]

    marker = tmp_path / "ran"
    files = list((tmp_path / "checkpoints" / "train").glob(f"checkpoint_*/{planted_in}"))
    assert files, f"no {planted_in} in the checkpoints"
    for file in files:
        torch.save({"state": _Planted(marker)}, file)
    with pytest.raises(Exception, match="holds more than tensors and plain values") as refused:
        _fit_scores(tiny_bert, tmp_path, n=40, **options)
    assert not marker.exists(), "the planted pickle ran"
    assert Path(files[0]).name in str(refused.value)  # the file is named


@pytest.mark.usefixtures("ray_local")
def test_a_refit_trains_on_every_training_document_for_the_chosen_epochs(tiny_bert, tmp_path):
    import numpy as np

    backend, report, gold = _fit_scores(tiny_bert, tmp_path, epochs=3, validation_size=0.25, refit=True)
    assert (report.n_train, report.n_eval) == (80, 20)
    history = json.loads((tmp_path / "state" / "training.json").read_text())
    chosen = [h for h in history if "phase" not in h]
    refit = [h for h in history if h.get("phase") == "refit"]
    assert [h["epoch"] for h in chosen] == [1, 2, 3]
    best = max(chosen, key=lambda h: (h["score"], h["epoch"]))["epoch"]
    assert [h["epoch"] for h in refit] == list(range(1, best + 1))
    assert all("score" not in h for h in refit)  # its validation documents were trained on
    assert f"refit on all 80 training documents for {best} epoch(s)" in report.notes[0]
    assert report.metrics["validation_score"] == max(h["score"] for h in chosen)
    # The kept model is the refit's: its scores are standardised over all 80 documents, not 60,
    # and its weights are the refit's last epoch, not the validation run's best.
    meta = json.loads((tmp_path / "state" / "model" / "scalecode-encoder.json").read_text())
    assert meta["target_mean"] == pytest.approx(float(np.mean(gold.scores())))
    backend.load()  # the saved model, as coding loads it
    kept = {name: p.detach() for name, p in backend.model.named_parameters()}
    refit_last = _last_checkpoint(tmp_path / "checkpoints" / "refit" / "train", "current.safetensors")
    validation_best = _last_checkpoint(tmp_path / "checkpoints" / "train", "best.safetensors")
    shared = sorted(set(kept) & set(refit_last))
    assert shared
    assert all(torch.equal(kept[name], refit_last[name]) for name in shared)
    assert not all(torch.equal(kept[name], validation_best[name]) for name in shared)
    assert backend.predict_batch(["good great", "terrible crisis"]).score is not None


@pytest.mark.usefixtures("ray_local")
def test_two_workers_train_on_every_document_of_an_odd_count(tiny_bert, tmp_path):
    """Ray Train's equal shards drop the rows left over; 81 documents on 2 workers must not lose one."""
    _, report, _ = _fit_scores(
        tiny_bert, tmp_path, n=81, workers=2, epochs=1, validation_size=0.25, refit=True
    )
    assert report.n_train == 81
    history = json.loads((tmp_path / "state" / "training.json").read_text())
    (refit,) = [h for h in history if h.get("phase") == "refit"]
    assert refit["samples"] == 82  # 41 on each worker: every document, and one of them twice


def test_rows_left_over_from_equal_shards_are_made_up_from_the_first():
    import pyarrow as pa

    from scalecode_hf.training import whole_for_workers

    table = pa.table({"i": list(range(7))})
    assert whole_for_workers(table, 1) is table
    assert whole_for_workers(table, 4).column("i").to_pylist() == [0, 1, 2, 3, 4, 5, 6, 0]
    assert whole_for_workers(table, 3).column("i").to_pylist() == [0, 1, 2, 3, 4, 5, 6, 0, 1]
    assert whole_for_workers(table.slice(0, 6), 3).num_rows == 6
    # Fewer documents than the rows missing: repeated whole, not cut short of a multiple.
    assert whole_for_workers(table.slice(0, 1), 4).column("i").to_pylist() == [0, 0, 0, 0]
    assert whole_for_workers(table.slice(0, 3), 8).column("i").to_pylist() == [0, 1, 2, 0, 1, 2, 0, 1]


def _last_checkpoint(run: Path, weights: str) -> dict[str, torch.Tensor]:
    """The weights file of a Ray Train run folder's checkpoint of the latest epoch."""
    from safetensors.torch import load_file

    folders = [f for f in run.glob("checkpoint_*") if f.is_dir()]
    latest = max(folders, key=lambda f: json.loads((f / "state.json").read_text())["epoch"])
    return load_file(latest / weights)


TRAIN = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from scalecode import FitConfig, TaskType
    from scalecode.testing import sample_gold, sample_task
    from scalecode_hf.encoder import EncoderBackend
    from scalecode_hf.options import TrainOptions

    model, out, checkpoints = sys.argv[1:4]
    task = sample_task(TaskType.CLASSIFICATION)
    backend = EncoderBackend(task, {"model": model, "pooling": "mean", "max_length": 32})
    options = TrainOptions(epochs=4, batch_size=2, learning_rate=2e-3, early_stopping_patience=0)
    config = FitConfig(output_dir=Path(out), checkpoint_dir=Path(checkpoints), seed=1, options=options)
    report = backend.fit(sample_gold(task, n=240), None, config)
    Path(out, "report.json").write_text(json.dumps({"notes": report.notes}))
""")


def test_a_killed_training_resumes_from_its_last_checkpoint(tiny_bert, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    checkpoints = tmp_path / "checkpoints"
    command = [sys.executable, str(script), str(tiny_bert), str(tmp_path / "out"), str(checkpoints)]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    # Its own session, so that killing the group takes down the Ray it started too, as a crash would.
    first = subprocess.Popen(
        command, start_new_session=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while not list((checkpoints / "train").glob("checkpoint_*")) and time.monotonic() < deadline:
        assert first.poll() is None, "training ended before its first checkpoint"
        time.sleep(0.5)
    assert list((checkpoints / "train").glob("checkpoint_*")), "no checkpoint within 5 minutes"
    time.sleep(2)  # let the checkpoint's record reach the run folder
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert not (tmp_path / "out" / "report.json").exists()

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert second.returncode == 0, second.stderr[-3000:]
    notes = json.loads((tmp_path / "out" / "report.json").read_text())["notes"]
    assert "resumed after epoch(s) [" in notes[0]
    history = json.loads((tmp_path / "out" / "training.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]  # every epoch once: none lost, none repeated

    # The resumed run goes on as an uninterrupted one would have: the same data order, optimizer,
    # schedule and dropout draws, so the same trained weights.
    whole = [sys.executable, str(script), str(tiny_bert), str(tmp_path / "whole"), str(tmp_path / "whole-ck")]
    third = subprocess.run(whole, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert third.returncode == 0, third.stderr[-3000:]
    resumed, uninterrupted = _saved_weights(tmp_path / "out"), _saved_weights(tmp_path / "whole")
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.allclose(resumed[k], uninterrupted[k], atol=1e-6) for k in resumed)


def _saved_weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    weights: dict[str, torch.Tensor] = {}
    for file in sorted(folder.rglob("*.safetensors")):
        weights.update({f"{file.name}:{k}": v for k, v in load_file(file).items()})
    assert weights, f"no weights saved in {folder}"
    return weights


def test_each_epoch_sees_every_training_row_once_in_a_new_seeded_order():
    import numpy as np

    from scalecode_hf.training import _shuffled_batches

    rows = {
        "input_ids": np.array([np.arange(n) for n in range(1, 11)], dtype=object),
        "row": np.arange(10),
    }
    epochs = [[b["row"].tolist() for b in _shuffled_batches(rows, 4, seed=s)] for s in (1, 2, 1)]
    assert [len(b) for b in epochs[0]] == [4, 4, 2]
    for batches in epochs:
        flat = [r for b in batches for r in b]
        assert sorted(flat) == list(range(10))
    assert epochs[0] == epochs[2] and epochs[0] != epochs[1]
    first = next(_shuffled_batches(rows, 4, seed=1))
    assert [len(ids) for ids in first["input_ids"]] == [r + 1 for r in first["row"]]  # columns stay aligned


def test_length_grouped_batches_pad_less_and_still_cover_every_row():
    import numpy as np

    from scalecode_hf.training import _shuffled_batches

    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 200, size=1000)
    rows = {"input_ids": np.array([np.zeros(n) for n in lengths], dtype=object), "row": np.arange(1000)}

    def padded(grouped: bool, seed: int) -> tuple[int, list[int]]:
        batches = list(_shuffled_batches(rows, 8, seed=seed, group_by_length=grouped))
        seen = sorted(r for b in batches for r in b["row"].tolist())
        return sum(8 * max(len(ids) for ids in b["input_ids"]) for b in batches), seen

    plain, seen_plain = padded(False, 1)
    grouped, seen_grouped = padded(True, 1)
    assert seen_plain == seen_grouped == list(range(1000))
    assert grouped < 0.7 * plain  # far less padding
    first = [b["row"].tolist() for b in _shuffled_batches(rows, 8, seed=1, group_by_length=True)]
    again = [b["row"].tolist() for b in _shuffled_batches(rows, 8, seed=1, group_by_length=True)]
    other = [b["row"].tolist() for b in _shuffled_batches(rows, 8, seed=2, group_by_length=True)]
    assert first == again and first != other  # seeded, and a new order each epoch


def _judged(scores: list[float], patience: int) -> tuple[int | None, list[bool], int]:
    """Epochs judged one by one as the loop does: (best epoch, kept?, the epoch it stopped after)."""
    from scalecode_hf.training import judge_epoch

    state: dict[str, Any] = {"best_score": None, "best_epoch": None, "bad_epochs": 0}
    kept = []
    for epoch, score in enumerate(scores, start=1):
        kept.append(judge_epoch(state, score, epoch))
        if state["bad_epochs"] >= patience:
            return state["best_epoch"], kept, epoch
    return state["best_epoch"], kept, len(scores)


def test_a_flat_validation_score_stops_early_and_keeps_the_later_equal_epoch():
    best, kept, stopped = _judged([0.5, 0.5, 0.5, 0.5, 0.5], patience=2)
    assert stopped == 3  # ties do not reset the patience
    assert best == 3 and kept == [True, True, True]  # the later of equal epochs is kept
    assert _judged([0.1, 0.3, 0.2, 0.4, 0.4, 0.3], patience=2) == (
        5,
        [True, True, False, True, True, False],
        6,
    )


def test_an_undefined_validation_score_is_never_the_best():
    nan = float("nan")
    assert _judged([nan, 0.2, nan, 0.1], patience=5) == (2, [True, True, False, False], 4)


def test_a_score_undefined_on_every_epoch_keeps_the_last_and_never_stops_early():
    """A validation split whose documents share one score leaves R^2 undefined on every epoch: there
    is nothing to stop early by, and the first epoch is no better a choice than the last."""
    from scalecode_hf.training import Trained, epochs_note

    nan = float("nan")
    assert _judged([nan, nan, nan, nan], patience=2) == (4, [True] * 4, 4)
    assert _judged([nan, nan, 0.3, nan, 0.1], patience=2) == (3, [True, True, True, False, False], 5)
    history = [{"epoch": e, "score": nan} for e in (1, 2, 3)]
    note = epochs_note("full", Trained(best_weights={}, history=history, best_epoch=3))
    assert "undefined on every epoch" in note and "best 3" in note
    history[1]["score"] = 0.2
    assert "undefined" not in epochs_note("full", Trained(best_weights={}, history=history, best_epoch=2))


def test_a_checkpoint_folder_of_other_training_is_refused(tmp_path):
    import pyarrow as pa

    from scalecode.errors import ScalecodeError
    from scalecode_hf.training import claim_checkpoints

    table = pa.table({"input_ids": [[1, 2], [3]], "target": [0.5, -1.0]})
    config = {"seed": 1, "epochs": 3, "learning_rate": 1e-4, "threads": 2}
    folder = tmp_path / "checkpoints"
    claim_checkpoints(folder, config, table)
    (folder / "train").mkdir()  # what Ray Train then writes there
    claim_checkpoints(folder, {**config, "threads": 8}, table)  # the same training on another machine
    with pytest.raises(ScalecodeError, match="other documents or with other options"):
        claim_checkpoints(folder, config, pa.table({"input_ids": [[1, 2], [3]], "target": [0.5, -2.0]}))
    with pytest.raises(ScalecodeError, match="other documents or with other options"):
        claim_checkpoints(folder, {**config, "learning_rate": 1e-3}, table)
    stray = tmp_path / "stray"
    (stray / "train").mkdir(parents=True)
    with pytest.raises(ScalecodeError, match="no scalecode training marked"):
        claim_checkpoints(stray, config, table)


def test_a_checkpoint_folder_knows_the_model_by_its_content_not_its_path(tiny_bert, tmp_path):
    """A project moved to another directory resumes its own checkpoints; another model or other
    options are still refused."""
    import hashlib
    import shutil
    from dataclasses import asdict

    import pyarrow as pa
    from safetensors.torch import load_file, save_file

    from scalecode.errors import ScalecodeError
    from scalecode_hf.models import resolve
    from scalecode_hf.training import claim_checkpoints

    def config(model: Path, **changes: Any) -> dict[str, Any]:
        recipe = {"source": asdict(resolve(str(model))), "mode": "full", "pooling": "mean"}
        return {
            "seed": 1,
            "learning_rate": 1e-4,
            "threads": 2,
            "deepspeed_stage": 2,
            "recipe_config": recipe,
        } | changes

    table = pa.table({"input_ids": [[1, 2], [3]], "target": [0.5, -1.0]})
    moved = shutil.copytree(tiny_bert, tmp_path / "elsewhere" / "tiny-bert")
    folder = tmp_path / "checkpoints"
    claim_checkpoints(folder, config(tiny_bert), table)
    (folder / "train").mkdir()
    claim_checkpoints(folder, config(moved), table)  # the same model, moved with its project

    refused = [
        config(moved, learning_rate=1e-3),
        config(moved, deepspeed_stage=None),  # ZeRO or not: other numbers, another checkpoint layout
        config(moved, workers=2),  # other shards, other steps
    ]
    retuned = shutil.copytree(tiny_bert, tmp_path / "retuned")
    settings = json.loads((retuned / "config.json").read_text())
    (retuned / "config.json").write_text(json.dumps({**settings, "hidden_dropout_prob": 0.3}))
    refused.append(config(retuned))
    other = shutil.copytree(tiny_bert, tmp_path / "other-weights")
    weights = load_file(other / "model.safetensors")
    name = next(iter(weights))
    save_file({**weights, name: weights[name] + 1}, other / "model.safetensors")
    refused.append(config(other))
    for changed in refused:
        with pytest.raises(ScalecodeError, match="other documents or with other options"):
            claim_checkpoints(folder, changed, table)

    # A folder claimed before the model was known by its content (the path hashed) is still this training's.
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    plain = {k: v for k, v in config(tiny_bert).items() if k != "threads"}
    digest = hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode())
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    digest.update(sink.getvalue().to_pybytes())
    (earlier / "training.sha256").write_text(digest.hexdigest() + "\n")
    claim_checkpoints(earlier, config(tiny_bert), table)
    claim_checkpoints(earlier, config(moved), table)  # and once accepted, it moves too
