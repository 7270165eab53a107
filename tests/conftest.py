"""Fixtures of the core tests: a drop-in plugin with a backend that misbehaves on cue."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from scalecode.inference import BackendSpec
from scalecode.task import Task, TaskType


def scalecode(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command line in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "scalecode.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )


TASK = Task(type=TaskType.CLASSIFICATION, labels=["pos", "neg"])

MOODY = textwrap.dedent('''
    import os
    import time
    from pathlib import Path

    from scalecode import Backend, BackendParams, Predictions, Resources, TaskType, hookimpl

    class MoodyParams(BackendParams):
        die_once: str | None = None  # a marker file: the first replica to see 'die' creates it and dies
        seconds_per_batch: float = 0.0
        batch_size: int = 4

    class Moody(Backend):
        """Positive unless the text says 'bad'; raises on 'boom'; answers nonsense on 'huh'."""
        name = "moody"
        task_types = frozenset({TaskType.CLASSIFICATION})
        Params = MoodyParams

        def resources(self):
            return Resources(cpus=1, batch_size=self.params.batch_size)

        def predict_batch(self, texts):
            time.sleep(self.params.seconds_per_batch)
            marker = self.params.die_once
            if marker and any("die" in t for t in texts) and not Path(marker).exists():
                Path(marker).write_text(str(os.getpid()))
                os._exit(1)  # the process dies as if killed: no exception, no clean-up
            if any("boom" in t for t in texts):
                raise RuntimeError("boom")
            labels = ["Positive!" if "huh" in t else ("neg" if "bad" in t else "pos") for t in texts]
            return Predictions(label=labels)

    @hookimpl
    def register_backends(register):
        register(Moody)
''')


@pytest.fixture
def plugins_dir(tmp_path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "moody.py").write_text(MOODY)
    return folder


@pytest.fixture
def spec(plugins_dir) -> BackendSpec:
    return BackendSpec(
        name="moody",
        plugin="moody",
        params={},
        task=TASK.model_dump(mode="json"),
        plugins_dir=str(plugins_dir),
        allow=("moody",),
    )


@pytest.fixture(scope="module")
def plugins():
    """The dictionary plugin alone: what most job-file tests name (a test file may define its own)."""
    from scalecode.plugins import load_plugins

    return load_plugins(allow=["scalecode-dictionary"])


def write_speeches_gold(path: Path) -> None:
    """A grouped gold CSV (id, text, label, speech): 60 speeches of 10 to 60 paragraphs, each speech
    of one party (D about 60%), seeded. Split at test_size 0.4 by speech, earlier versions held out
    one of round(1 / 0.4) = 2 folds, about half."""
    rng = np.random.default_rng(0)
    rows = ["id,text,label,speech"]
    for speech in range(60):
        party = "D" if rng.random() < 0.6 else "R"
        rows += [
            f"s{speech}-p{p},text {speech} {p},{party},s{speech}" for p in range(int(rng.integers(10, 61)))
        ]
    path.write_text("\n".join(rows) + "\n")


def write_sample_gold(path: Path, n: int = 60) -> None:
    """A gold CSV (id, text, label) of ``n`` documents of scalecode.testing's three-label sample task."""
    from scalecode.testing import sample_gold, sample_task

    gold = sample_gold(sample_task(TaskType.CLASSIFICATION), n=n)
    rows = ["id,text,label"] + [
        f"{i},{t},{y}" for i, t, y in zip(gold.ids, gold.texts, gold.targets, strict=True)
    ]
    path.write_text("\n".join(rows) + "\n")
