"""The budget's ledger: what a run spent, shared by every load of the run, kept through a kill."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from scalecode.errors import StopRun
from scalecode_openai import cost
from scalecode_openai.cost import LEDGER_RUNS, Budget

SRC = Path(__file__).resolve().parents[1] / "src"


def budget(ledger: Path, run: str = "run-1", limit: float = 100.0) -> Budget:
    """A load's budget in run ``run``: the loads of one `scalecode run` share its run id."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cost, "run_id", lambda: run)
        return Budget(limit, "test-model", ledger)


def in_another_process(ledger: Path, code: str) -> subprocess.Popen[bytes]:
    """``code`` run with ``spending``, a budget of run-1 on ``ledger``, in a fresh interpreter."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        from pathlib import Path
        sys.path.insert(0, {str(SRC)!r})
        from scalecode_openai import cost
        cost.run_id = lambda: "run-1"
        spending = cost.Budget(100.0, "test-model", Path({str(ledger)!r}))
        """)
    return subprocess.Popen([sys.executable, "-c", script + textwrap.dedent(code)])


def ledger_files(ledger: Path) -> list[Path]:
    return [ledger] if ledger.is_file() else sorted(p for p in ledger.iterdir() if p.is_file())


def test_a_charge_appends_to_the_ledger_instead_of_rewriting_it(tmp_path):
    """Rewriting the ledger per answered request cost 0.3 to 1.7 ms on ext4 (a file written anew and
    renamed over the old one starts its writeback), several percent of a request to a server on
    loopback; an append costs microseconds. What a charge wrote is never rewritten by the next."""
    ledger = tmp_path / "spending"
    spending = budget(ledger)
    spending.spend(0.25)
    before = {path: (path.stat().st_ino, path.read_bytes()) for path in ledger_files(ledger)}
    for _ in range(3):
        spending.spend(0.25)
    for path, (inode, written) in before.items():
        assert path.stat().st_ino == inode
        now = path.read_bytes()
        assert now.startswith(written) and len(now) > len(written)
    assert spending.spent == pytest.approx(1.0)


def test_the_loads_of_one_run_add_up_and_see_each_others_spending(tmp_path):
    ledger = tmp_path / "spending"
    gold, corpus = budget(ledger), budget(ledger)
    gold.spend(0.5)
    corpus.reserve()
    assert corpus.spent == pytest.approx(0.5)
    corpus.spend(0.25)
    gold.reserve()
    assert gold.spent == pytest.approx(0.75)
    assert budget(ledger).spent == pytest.approx(0.75)  # a later load of the run starts from there
    assert budget(ledger, run="run-2").spent == 0.0  # the next run starts from zero


def test_what_was_spent_survives_a_kill_right_after_the_charge(tmp_path):
    ledger = tmp_path / "spending"
    killed = in_another_process(ledger, "spending.spend(0.3)\nos.kill(os.getpid(), signal.SIGKILL)\n")
    assert killed.wait(timeout=120) == -signal.SIGKILL
    assert budget(ledger).spent == pytest.approx(0.3)
    with pytest.raises(StopRun, match=r"budget of \$0.30 reached"):
        budget(ledger, limit=0.3).reserve()


def test_processes_charging_at_once_lose_no_charge(tmp_path):
    ledger = tmp_path / "spending"
    loop = "for _ in range(300):\n    spending.reserve()\n    spending.spend(0.01)\n"
    workers = [in_another_process(ledger, loop) for _ in range(3)]
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0, 0]
    assert budget(ledger).spent == pytest.approx(9.0)


def test_the_ledger_keeps_the_latest_runs(tmp_path):
    ledger = tmp_path / "spending"
    for run in range(LEDGER_RUNS + 5):
        spending = budget(ledger, run=f"run-{run}")
        for _ in range(10):
            spending.spend(0.01)
        time.sleep(0.02)  # runs are minutes apart; the file system tells them apart by time
    budget(ledger, run="run-new")  # a load of the next run
    kept = [run for run in range(LEDGER_RUNS + 5) if budget(ledger, run=f"run-{run}").spent > 0]
    assert kept == list(range(5, LEDGER_RUNS + 5))
    assert budget(ledger, run=f"run-{LEDGER_RUNS + 4}").spent == pytest.approx(0.1)
