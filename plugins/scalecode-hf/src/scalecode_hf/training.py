"""Fine-tuning through Ray Train: one loop for every model recipe, on CPUs (gloo) or GPUs, DeepSpeed or not.

The driver hands ``TorchTrainer`` a recipe (how to build the model, batch the data, compute the loss and
score the validation split), the tokenised training documents as a Ray Dataset, and the scaling. Each
worker reads its shard of the dataset, trains, scores the validation split after every epoch with
scalecode's common scoring, keeps the best weights (by the task's primary metric), stops early when
the score stops improving, and reports a checkpoint every epoch: the current and best trained weights
(safetensors), optimizer and scheduler state, each worker's random state, and the loop's state.
Running the same training again with the same checkpoint folder resumes from the latest checkpoint
and goes on as the run would have; a folder left by training on other documents or with other
options is refused (``claim_checkpoints``).

With ``refit``, the validation run only chooses the number of epochs: a second run then trains a fresh
model on every training document, validation share included, with the same seed and learning-rate
schedule, stops after that many epochs and keeps the last (``refit_on_all``), as scikit-learn's
searches refit their best candidate on all the data.

DeepSpeed (ZeRO stages 0-2) is used where asked, by default on GPUs, with a torch optimizer so that no
DeepSpeed optimizer op has to be compiled; its one-time C++ builds live in scalecode's cache.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import random
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import torch
from safetensors.torch import load_file, save_file

from scalecode import GoldSet, Predictions, Task, TaskType
from scalecode.scoring import BUILTIN_METRICS, encode, metrics_for
from scalecode.scoring.bootstrap import bootstrap
from scalecode_hf.batching import autocast
from scalecode_hf.devices import choose_precision, quiet_libraries, use_extensions_cache
from scalecode_hf.encoder_model import load_trainable, parameter_counts, trainable_state
from scalecode_hf.optim import build_optimizer
from scalecode_hf.options import DeepSpeedOptions, TrainOptions
from scalecode_hf.safe_load import load_deepspeed_checkpoints_plainly, load_plain


class Recipe(Protocol):
    """What the loop needs from a model family; built on each worker from a plain dict."""

    def __init__(self, config: dict[str, Any]) -> None: ...

    def build(self, device: torch.device) -> torch.nn.Module: ...

    def collate(self, batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]: ...

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...

    def validate(self, model: torch.nn.Module, device: torch.device, precision: str) -> dict[str, float]: ...


@dataclass
class Trained:
    """What training produced: the best trained weights and the record of every epoch."""

    best_weights: dict[str, torch.Tensor]
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    resumed_after_epochs: list[int] = field(default_factory=list)  # epochs done when a rerun resumed
    refit_resumed_after_epochs: list[int] = field(default_factory=list)  # the same, of a refit
    trainable_parameters: int = 0
    total_parameters: int = 0
    seconds: float = 0.0
    workers: int = 1
    deepspeed_stage: int | None = None


def _import(path: str) -> type[Recipe]:
    module, _, name = path.partition(":")
    recipe: type[Recipe] = getattr(importlib.import_module(module), name)
    return recipe


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """The random state training draws from after seeding (dropout): torch's, and the GPU's."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def train_loop(config: dict[str, Any]) -> None:
    """The per-worker training function of ``TorchTrainer`` (everything comes through ``config``)."""
    import ray.train
    import ray.train.torch
    from transformers import get_linear_schedule_with_warmup

    use_extensions_cache()
    quiet_libraries()
    # No "Reporting training result ..." per epoch: Ray Train logs it through a logger named by its
    # source file's path, which the "ray.train" hierarchy does not cover.
    for name in [*logging.root.manager.loggerDict, "ray.train"]:
        if name.startswith("ray.train") or "/ray/train/" in name.replace("\\", "/"):
            logging.getLogger(name).setLevel(logging.WARNING)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    _seed(config["seed"])
    torch.set_num_threads(config["threads"])
    device = ray.train.torch.get_device()
    precision = choose_precision(config["precision"], device, training=True)
    recipe = _import(config["recipe"])(config["recipe_config"])
    model = recipe.build(device)
    trainable, total = parameter_counts(model)

    batch_size, accumulate = config["batch_size"], config["gradient_accumulation_steps"]
    steps_per_epoch = max(1, math.ceil(math.ceil(config["train_rows"] / world) / (batch_size * accumulate)))
    # A refit stops after the chosen epoch of a schedule as long as the validation run's.
    total_steps = steps_per_epoch * config.get("schedule_epochs", config["epochs"])
    if config["max_steps"]:
        total_steps = min(total_steps, config["max_steps"])
    optimizer = build_optimizer(
        model,
        config["learning_rate"],
        config["weight_decay"],
        head_learning_rate=config.get("head_learning_rate"),
        layer_decay=config.get("layer_decay"),
    )
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(config["warmup_ratio"] * total_steps), total_steps
    )
    stage = config["deepspeed_stage"]
    engine = None
    if stage is not None:
        import deepspeed

        ds_config = {
            "train_micro_batch_size_per_gpu": batch_size,
            "gradient_accumulation_steps": accumulate,
            "gradient_clipping": config["max_grad_norm"],
            "zero_optimization": {"stage": stage},
            "bf16": {"enabled": precision == "bf16"},
            "fp16": {"enabled": precision == "fp16"},
            "steps_per_print": 10**9,
        }
        engine, optimizer, _, scheduler = deepspeed.initialize(
            model=model,
            optimizer=optimizer,
            lr_scheduler=scheduler,
            config=ds_config,
            dist_init_required=False,
        )
        load_deepspeed_checkpoints_plainly(engine)  # DeepSpeed's own loads would unpickle anything
        runner: torch.nn.Module = engine
        raw = engine.module
    else:
        raw = model
        runner = ray.train.torch.prepare_model(model) if world > 1 else model.to(device)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" and engine is None else None

    state: dict[str, Any] = {
        "epoch": 0,
        "step": 0,
        "best_score": None,
        "best_epoch": None,
        "bad_epochs": 0,
        "history": [],
        "stopped_early": False,
    }
    best: dict[str, torch.Tensor] | None = None
    restored = ray.train.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as folder:
            saved = Path(folder)
            state = json.loads((saved / "state.json").read_text())
            state.setdefault("resumed_after_epochs", []).append(state["epoch"])
            load_trainable(raw, load_file(saved / "current.safetensors"))
            best = load_file(saved / "best.safetensors")
            if (saved / f"rng-{rank}.pt").exists():  # dropout goes on as it would have without the kill
                restore_rng(load_plain(saved / f"rng-{rank}.pt"), device)
            if engine is not None:
                engine.load_checkpoint(str(saved / "deepspeed"), tag="state", load_module_strict=False)
            else:
                optimizer.load_state_dict(load_plain(saved / "optimizer.pt"))
                scheduler.load_state_dict(load_plain(saved / "scheduler.pt"))
            if scaler is not None and (saved / "scaler.pt").exists():
                # fp16's loss scale as it had grown: from its initial 65536 again, the first steps
                # would overflow and be skipped while the schedule moved on.
                scaler.load_state_dict(load_plain(saved / "scaler.pt"))

    def checkpoint(metrics: dict[str, Any]) -> None:
        assert best is not None
        with tempfile.TemporaryDirectory() as folder:
            target = Path(folder)
            if rank == 0:
                save_file(trainable_state(raw), target / "current.safetensors")
                save_file(best, target / "best.safetensors")
                (target / "state.json").write_text(json.dumps(state))
                if engine is None:
                    torch.save(optimizer.state_dict(), target / "optimizer.pt")
                    torch.save(scheduler.state_dict(), target / "scheduler.pt")
                if scaler is not None:
                    torch.save(scaler.state_dict(), target / "scaler.pt")
            torch.save(rng_state(device), target / f"rng-{rank}.pt")  # moved on by this rank's own batches
            if engine is not None:  # every rank holds part of the ZeRO optimizer state
                engine.save_checkpoint(str(target / "deepspeed"), tag="state")
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))

    # The shard is read from Ray Data once and kept in memory: a gold set's tokens are small, and
    # streaming every mini-batch through Ray Data again each epoch cost ~10% of a 2-core step.
    rows = _read_shard(ray.train.get_dataset_shard("train"))
    patience = config["early_stopping_patience"]
    ran = False
    # Restored from a run that had already stopped (early, or at max_steps): it must not train on.
    finished = state["stopped_early"] or (bool(config["max_steps"]) and state["step"] >= config["max_steps"])
    for epoch in range(config["epochs"] if finished else state["epoch"], config["epochs"]):
        ran = True
        runner.train()
        started, seen, losses = time.perf_counter(), 0, []
        pending = False
        batches = _shuffled_batches(
            rows, batch_size, seed=config["seed"] * 1000 + epoch, group_by_length=config["group_by_length"]
        )
        n_batches = -(-_row_count(rows) // batch_size)
        for i, batch in enumerate(batches):
            tensors = recipe.collate(batch, device)
            if engine is not None:
                # The boundary is set for every micro-batch rather than left to DeepSpeed's own count,
                # which runs on across epochs: an epoch's last few micro-batches (fewer than
                # gradient_accumulation_steps) would be added to the next epoch's first, and after the
                # last epoch never applied. Set here, each epoch ends with a step of its own, as on the
                # path without DeepSpeed and as the learning-rate schedule counts them.
                boundary = (i + 1) % accumulate == 0 or i + 1 == n_batches
                engine.set_gradient_accumulation_boundary(boundary)
                loss = recipe.loss(runner, tensors)
                engine.backward(loss)
                engine.step()
                if boundary:
                    state["step"] += 1
            else:
                with autocast(device, precision):
                    loss = recipe.loss(runner, tensors)
                scaled = loss / accumulate
                (scaler.scale(scaled) if scaler else scaled).backward()
                pending = True
                if (i + 1) % accumulate == 0:
                    _step(model, optimizer, scheduler, scaler, config["max_grad_norm"])
                    pending = False
                    state["step"] += 1
            losses.append(float(loss.detach()))
            seen += len(next(iter(batch.values())))
            if config["max_steps"] and state["step"] >= config["max_steps"]:
                break
        if pending:
            _step(model, optimizer, scheduler, scaler, config["max_grad_norm"])
            state["step"] += 1
        elapsed = time.perf_counter() - started
        runner.eval()
        if config["keep_last"]:  # a refit: the validation documents are training documents now
            scores: dict[str, float] = {}
            keep = True
        else:
            scores = agreed(recipe.validate(raw, device, precision), world)
            keep = judge_epoch(state, scores["score"], epoch + 1)
        if keep:
            best = trainable_state(raw)
        record = {
            "epoch": epoch + 1,
            "train_loss": float(np.mean(losses)) if losses else None,
            "samples_per_second": seen * world / elapsed if elapsed > 0 else None,
            "samples": seen * world,  # every rank's shard is as long as this one's
            "optimizer_steps": state["step"],  # since the start of training
            **scores,
        }
        state["history"].append(record)
        state["epoch"] = epoch + 1
        out_of_steps = bool(config["max_steps"]) and state["step"] >= config["max_steps"]
        state["stopped_early"] = (
            bool(patience) and state["bad_epochs"] >= patience and epoch + 1 < config["epochs"]
        )
        checkpoint({**record, "trainable_parameters": trainable, "total_parameters": total})
        if state["stopped_early"] or out_of_steps:
            break
    if not ran:  # restored after the last epoch: report once more so that the result carries it
        checkpoint({"epoch": state["epoch"], "trainable_parameters": trainable, "total_parameters": total})


def agreed(scores: dict[str, float], world: int) -> dict[str, float]:
    """Rank 0's validation scores on every rank. Each rank scores the whole validation split (a
    ZeRO-3 forward pass needs them all), but GPUs of two models, or kernels that are not
    deterministic, can tip a near tie apart: a rank that judged alone could stop early while the
    others went on and waited for it in their next all-reduce until the job timed out."""
    if world < 2:
        return scores
    import torch.distributed as dist

    shared: list[Any] = [scores]
    dist.broadcast_object_list(shared, src=0)
    return dict(shared[0])


def judge_epoch(state: dict[str, Any], score: float, epoch: int) -> bool:
    """Record an epoch's validation score in ``state``; True where its weights become the best.

    A later epoch as good as the best replaces it (same score, more training), but only a better
    score resets the patience: a score that stays flat must still stop early. A NaN score (a
    validation split the figure is undefined on) is never better, so it counts against patience;
    but while no epoch has had a score, there is nothing to judge by: the latest epoch is kept, as
    training without validation keeps it, and none counts against patience (else a validation split
    whose documents share one score would stop every run after its first epochs and keep the first).
    """
    best = state["best_score"]
    if _undefined(score) and (best is None or _undefined(best)):
        state.update(best_score=math.nan, best_epoch=epoch)
        return True
    if best is None or _better(score, best):
        state.update(best_score=score, best_epoch=epoch, bad_epochs=0)
        return True
    state["bad_epochs"] += 1
    if score == best:
        state["best_epoch"] = epoch
        return True
    return False


def _better(score: float | None, best: float) -> bool:
    if _undefined(score):
        return False
    assert score is not None
    return math.isnan(best) or score > best


def _undefined(score: float | None) -> bool:
    return score is None or math.isnan(score)


# A recipe config's entry for the backend's operational options the workers still read (the batch
# size of validation's forward passes): how training runs, not what it trains, so no part of its identity.
OPERATIONAL = "operational"


def training_identity(config: dict[str, Any]) -> dict[str, Any]:
    """What makes ``train_loop``'s config this training: what changes the numbers trained or what a
    checkpoint holds. Not the thread count, which follows the machine, nor the recipe's operational
    options (a coding batch size changed between runs, as a job may, still resumes), nor the folder
    the model sits in (a project moved to another directory resumes its own checkpoints): the model
    counts by its content. The DeepSpeed stage stays, though ``auto`` resolves it from the GPUs: ZeRO
    trains other numbers, and its checkpoints keep the optimizer state where a run without it would
    not look."""
    from scalecode_hf.models import ModelSource, content_identity

    identity = {k: v for k, v in config.items() if k != "threads"}
    recipe_config = identity.get("recipe_config")
    if isinstance(recipe_config, dict):
        recipe_config = {k: v for k, v in recipe_config.items() if k != OPERATIONAL}
        if "source" in recipe_config:
            recipe_config["source"] = content_identity(ModelSource(**recipe_config["source"]))
        identity["recipe_config"] = recipe_config
    return identity


def _training_digest(identity: dict[str, Any], table_bytes: bytes) -> str:
    import hashlib

    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode())
    digest.update(table_bytes)
    return digest.hexdigest()


def claim_checkpoints(checkpoint_dir: Path, config: dict[str, Any], table: pa.Table) -> None:
    """Mark ``checkpoint_dir`` as this training's, or refuse it if it holds another training's.

    Ray Train resumes from whatever checkpoint the folder holds; one left by training on other
    documents or with other options would be resumed as if it were this one's.
    """
    from scalecode.errors import ScalecodeError

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    table_bytes = sink.getvalue().to_pybytes()
    digest = _training_digest(training_identity(config), table_bytes)
    marker = checkpoint_dir / "training.sha256"
    if marker.exists():
        claimed = marker.read_text().strip()
        # Earlier versions hashed the config as it was (the model's path in it, no worker count): a
        # folder they claimed is still this training's where that hash matches, and is claimed anew.
        earlier = {k: v for k, v in config.items() if k not in ("threads", "workers")}
        if claimed != digest and claimed == _training_digest(earlier, table_bytes):
            marker.write_text(digest + "\n")
        elif claimed != digest:
            raise ScalecodeError(
                f"{checkpoint_dir} holds checkpoints of training on other documents or with other options; "
                "delete that folder to train afresh, or give this training another checkpoint folder"
            )
        return
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    if any(checkpoint_dir.iterdir()):
        raise ScalecodeError(
            f"{checkpoint_dir} holds files that no scalecode training marked as its own; "
            "delete that folder or give this training another checkpoint folder"
        )
    marker.write_text(digest + "\n")


def whole_for_workers(table: pa.Table, workers: int) -> pa.Table:
    """``table`` with its first few rows again at the end, so that its rows divide among ``workers``.

    Ray Train splits the training set among the workers in equal shards and drops the rows left
    over: up to ``workers - 1`` training documents would never be trained on. Repeating as many as
    are missing (what torch's DistributedSampler does) trains on every document, a few of them
    twice an epoch.
    """
    rows = table.num_rows
    missing = -rows % workers
    if not missing or not rows:
        return table
    # Round and round from the first row: a set smaller than the missing count is repeated whole.
    return pa.concat_tables([table, table.take(pa.array(np.arange(missing) % rows))])


def _read_shard(shard: Any) -> dict[str, np.ndarray]:
    """A worker's whole shard as columns (list columns become object arrays of arrays)."""
    tables = list(shard.iter_batches(batch_size=None, batch_format="pyarrow"))
    table = pa.concat_tables(tables) if tables else pa.table({})
    return {name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names}


def _shuffled_batches(
    rows: dict[str, np.ndarray], batch_size: int, *, seed: int, group_by_length: bool = False
) -> Iterator[dict[str, np.ndarray]]:
    """The shard in a seeded random order (a new one each epoch), cut into batches.

    ``group_by_length``: documents of similar length share a batch, so that less of each step is spent
    on padding. The random order is cut into windows of 50 batches, each window is sorted by length
    and cut into batches, and the batches are shuffled, so a batch's neighbours are still random
    (the Hugging Face Trainer's ``group_by_length`` does the same).
    """
    n = len(next(iter(rows.values()))) if rows else 0
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    if group_by_length and "input_ids" in rows:
        lengths = np.fromiter((len(ids) for ids in rows["input_ids"]), dtype=np.int64, count=n)
        window = batch_size * 50
        order = (
            np.concatenate(
                [
                    part[np.argsort(-lengths[part], kind="stable")]
                    for part in np.array_split(order, max(1, -(-n // window)))
                ]
            )
            if n
            else order
        )
        cuts = [order[i : i + batch_size] for i in range(0, n, batch_size)]
        order_of_batches = rng.permutation(len(cuts))
        batches = [cuts[i] for i in order_of_batches]
    else:
        batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    for take in batches:
        yield {name: column[take] for name, column in rows.items()}


def _row_count(rows: dict[str, np.ndarray]) -> int:
    return len(next(iter(rows.values()))) if rows else 0


def _step(model: torch.nn.Module, optimizer: Any, scheduler: Any, scaler: Any, max_norm: float) -> None:
    if scaler is not None:
        scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], max_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


VALIDATION_METRIC = {
    TaskType.CLASSIFICATION: "macro_f1",
    TaskType.MULTILABEL: "macro_f1",
    TaskType.REGRESSION: "r2",
}


def validation_scores(task: Task, predicted: Predictions, targets: list[Any]) -> dict[str, float]:
    """The common scoring's figures on the validation split (no intervals), and the one that decides
    early stopping and the best epoch as ``score``."""
    codes = {
        TaskType.CLASSIFICATION: predicted.label,
        TaskType.MULTILABEL: predicted.labels,
        TaskType.REGRESSION: predicted.score,
    }[task.type]
    metrics = metrics_for(task, BUILTIN_METRICS)
    y_true = encode(task, targets)
    y_pred = encode(task, list(codes))  # type: ignore[arg-type]
    values = {name: e.value for name, e in bootstrap(metrics, y_true, y_pred, n_boot=0).items()}
    return {**values, "score": values[VALIDATION_METRIC[task.type]]}


def validation_split(
    train: GoldSet, eval: GoldSet | None, validation_size: float, seed: int
) -> tuple[GoldSet, GoldSet, str | None]:
    """(documents to train on, documents to validate on, a note for the report or None).

    An evaluation set given to ``fit`` is the validation set, and every training document is trained
    on. Otherwise a share of ``train`` is held out, stratified by label where the task is a
    classification and every label has documents enough; where one has not, the split is not
    stratified (and the note says so) rather than failing with advice about evaluation options that
    do not govern this split.
    """
    from scalecode.errors import ScalecodeError
    from scalecode.splits import split_gold

    if eval is not None:
        return train, eval, None
    if train.task.type is TaskType.CLASSIFICATION:
        try:
            fit_set, validation = split_gold(train, test_size=validation_size, seed=seed, stratify=True)
            return fit_set, validation, None
        except ScalecodeError:
            pass  # too few documents of some label to stratify; an unstratified split may still do
        fit_set, validation = split_gold(train, test_size=validation_size, seed=seed, stratify=False)
        note = "validation split not stratified: some label has too few training documents to stratify"
        return fit_set, validation, note
    fit_set, validation = split_gold(train, test_size=validation_size, seed=seed, stratify=False)
    return fit_set, validation, None


def run_training(
    recipe: str,
    recipe_config: dict[str, Any],
    train_table: pa.Table,
    options: TrainOptions,
    *,
    checkpoint_dir: Path | None,
    seed: int,
    keep_last: bool = False,
    schedule_epochs: int | None = None,
) -> Trained:
    """Train with Ray Train on the cluster this process is connected to (one is started if none is).

    ``checkpoint_dir`` None: nobody will resume, so checkpoints go to a temporary folder, removed
    afterwards, and stay out of the trained state. ``keep_last``: no validation; every epoch runs and
    the last one's weights are kept (a refit). ``schedule_epochs``: the learning-rate schedule spans
    this many epochs (default: ``options.epochs``), so that a refit can stop part-way through it.
    """
    if checkpoint_dir is None:
        with tempfile.TemporaryDirectory(prefix="scalecode-checkpoints-") as scratch:
            return run_training(
                recipe,
                recipe_config,
                train_table,
                options,
                checkpoint_dir=Path(scratch),
                seed=seed,
                keep_last=keep_last,
                schedule_epochs=schedule_epochs,
            )
    import ray
    from ray.train import CheckpointConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from scalecode.inference import start_ray

    start_ray()
    cluster = ray.cluster_resources()
    cpus, gpus = float(cluster.get("CPU", 1)), float(cluster.get("GPU", 0))
    if options.gpus_per_worker == "auto":
        gpus_per_worker = 1.0 if gpus >= options.workers else 0.0
    else:
        gpus_per_worker = float(options.gpus_per_worker)
    use_gpu = gpus_per_worker > 0
    # Leave a CPU for Ray Data, which feeds the workers; on 2 CPUs two whole-CPU workers would starve it.
    cpus_per_worker = options.cpus_per_worker or max(
        0.5, (cpus - 1) / options.workers if cpus > 1 else cpus / 2
    )
    resources = {"CPU": cpus_per_worker, **({"GPU": gpus_per_worker} if use_gpu else {})}
    deepspeed = options.deepspeed
    stage = None
    if deepspeed == "auto":
        stage = 2 if use_gpu else None
    elif deepspeed is True:
        stage = 2
    elif isinstance(deepspeed, DeepSpeedOptions):
        stage = deepspeed.stage
    config = {
        "recipe": recipe,
        "recipe_config": recipe_config,
        "seed": seed,
        # Ray's reservation keeps a CPU free for feeding data; the worker's threads may still use it,
        # since the data come from memory and feeding them costs little.
        "threads": max(1, int(cpus // options.workers)),
        "precision": options.precision,
        "batch_size": options.batch_size,
        "gradient_accumulation_steps": options.gradient_accumulation_steps,
        "epochs": options.epochs,
        "schedule_epochs": schedule_epochs or options.epochs,
        "max_steps": options.max_steps,
        "learning_rate": options.learning_rate_for_mode(),
        "head_learning_rate": options.head_learning_rate,
        "layer_decay": options.layer_decay,
        "weight_decay": options.weight_decay,
        "warmup_ratio": options.warmup_ratio,
        "max_grad_norm": options.max_grad_norm,
        "early_stopping_patience": 0 if keep_last else options.early_stopping_patience,
        "keep_last": keep_last,
        "deepspeed_stage": stage,
        # Not read by the loop (Ray gives it the world size), but it shards the data and sets the
        # steps per epoch, so a checkpoint of another worker count is another training's.
        "workers": options.workers,
        "train_rows": train_table.num_rows,
        "group_by_length": options.group_by_length,
    }
    started = time.perf_counter()
    claim_checkpoints(checkpoint_dir, config, train_table)
    trainer = TorchTrainer(
        train_loop,
        train_loop_config=config,
        scaling_config=ScalingConfig(
            num_workers=options.workers, use_gpu=use_gpu, resources_per_worker=resources
        ),
        run_config=RunConfig(
            name="train",
            storage_path=str(checkpoint_dir.resolve()),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            logging_config=LoggingConfig(log_level="WARNING"),
        ),
        datasets={"train": ray.data.from_arrow(whole_for_workers(train_table, options.workers))},
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"training reported no checkpoint (see {checkpoint_dir})")
    with result.checkpoint.as_directory() as folder:
        saved = Path(folder)
        state = json.loads((saved / "state.json").read_text())
        best = load_file(saved / "best.safetensors")
    metrics = result.metrics or {}
    return Trained(
        best_weights=best,
        history=state["history"],
        best_epoch=state["best_epoch"],
        stopped_early=state["stopped_early"],
        resumed_after_epochs=state.get("resumed_after_epochs", []),
        trainable_parameters=int(metrics.get("trainable_parameters", 0)),
        total_parameters=int(metrics.get("total_parameters", 0)),
        seconds=time.perf_counter() - started,
        workers=options.workers,
        deepspeed_stage=stage,
    )


def refit_on_all(
    recipe: str,
    recipe_config: dict[str, Any],
    all_table: pa.Table,
    options: TrainOptions,
    selected: Trained,
    *,
    checkpoint_dir: Path | None,
    seed: int,
) -> Trained:
    """Train a fresh model on every training document for the epochs the validation run chose.

    The same seed and learning-rate schedule as the validation run (over ``options.epochs``), stopped
    after its best epoch: what was validated, on more documents. The returned record's history is
    the validation run's epochs followed by the refit's (marked ``"phase": "refit"``, without
    validation scores: those documents are trained on now); its best epoch stays the validation
    run's choice, its weights are the refit's last epoch.
    """
    epochs = selected.best_epoch or len(selected.history) or options.epochs
    selected.best_weights = {}  # not needed any more; a full model's copy would sit in memory
    refit = run_training(
        recipe,
        recipe_config,
        all_table,
        options.model_copy(update={"epochs": epochs}),
        checkpoint_dir=checkpoint_dir / "refit" if checkpoint_dir is not None else None,
        seed=seed,
        keep_last=True,
        schedule_epochs=options.epochs,
    )
    return Trained(
        best_weights=refit.best_weights,
        history=selected.history + [{**record, "phase": "refit"} for record in refit.history],
        best_epoch=selected.best_epoch,
        stopped_early=selected.stopped_early,
        resumed_after_epochs=selected.resumed_after_epochs,
        refit_resumed_after_epochs=refit.resumed_after_epochs,
        trainable_parameters=refit.trainable_parameters,
        total_parameters=refit.total_parameters,
        seconds=selected.seconds + refit.seconds,
        workers=refit.workers,
        deepspeed_stage=refit.deepspeed_stage,
    )


def epochs_note(mode: str, trained: Trained, n_refit: int | None = None) -> str:
    """One line for the report: epochs run, the best, early stopping, resumption, a refit."""
    chosen = [h for h in trained.history if h.get("phase") != "refit"]
    refit = len(trained.history) - len(chosen)
    judged = [h["score"] for h in chosen if "score" in h]
    return (
        f"mode {mode}; {len(chosen)} epoch(s), best {trained.best_epoch}"
        + (
            "; the validation figure was undefined on every epoch (the validation documents share one "
            "code?): the last epoch kept, never stopped early"
            if judged and all(_undefined(score) for score in judged)
            else ""
        )
        + ("; stopped early" if trained.stopped_early else "")
        + (f"; resumed after epoch(s) {trained.resumed_after_epochs}" if trained.resumed_after_epochs else "")
        + (f"; refit on all {n_refit} training documents for {refit} epoch(s)" if refit else "")
        + (
            f" (resumed after epoch(s) {trained.refit_resumed_after_epochs})"
            if trained.refit_resumed_after_epochs
            else ""
        )
    )


def validation_metrics(trained: Trained) -> dict[str, float]:
    """The validation figures of the chosen epoch (of the validation run, where there was a refit)."""
    best = next(
        (h for h in trained.history if h["epoch"] == trained.best_epoch and h.get("phase") != "refit"), {}
    )
    return {f"validation_{k}": float(v) for k, v in best.items() if isinstance(v, int | float)}
