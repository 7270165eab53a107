"""Command options out of range are refused by name, before any file is read; warnings about the
job reach the user as the command's own lines."""

from __future__ import annotations

import json
import warnings

import pytest
from click.testing import CliRunner

from scalecode.cli import _warnings_as_lines, cli
from scalecode.curves import CurveSizeWarning
from scalecode.splits import SplitShareWarning


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "g.csv").write_text("id,label\na,x\nb,y\nc,x\nd,y\ne,x\nf,y\n")
    (tmp_path / "p.csv").write_text("id,label\na,x\nb,x\nc,x\nd,y\ne,x\nf,y\n")
    return tmp_path


def score(*options: str):
    return CliRunner().invoke(cli, ["score", "p.csv", "g.csv", "--task", "classification", *options])


@pytest.mark.parametrize("options", [["--confidence", "1.5"], ["--confidence", "95"], ["--confidence", "0"]])
def test_a_confidence_outside_0_to_1_is_refused_by_name_not_blamed_on_the_file(files, options):
    result = score(*options)
    assert result.exit_code == 2
    assert "--confidence" in result.stderr and "p.csv" not in result.stderr


def test_a_negative_bootstrap_is_refused(files):
    result = score("--bootstrap", "-5")
    assert result.exit_code == 2 and "--bootstrap" in result.stderr


def test_no_resamples_gives_no_intervals_and_the_note_says_so(files):
    result = score("--bootstrap", "0")
    assert result.exit_code == 0, result.output
    assert "n/a" not in result.stdout  # figures alone, not "[n/a, n/a]" beside each
    assert "bootstrap intervals" not in result.stdout
    assert "without intervals (no bootstrap resamples were drawn)" in result.stdout
    with_intervals = score("--bootstrap", "50", "--confidence", "0.9")
    assert with_intervals.exit_code == 0, with_intervals.output
    assert "with 90% percentile bootstrap intervals" in with_intervals.stdout


def test_run_refuses_fewer_than_one_cpu(tmp_path):
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "job.yaml"), "--num-cpus", "0"])
    assert result.exit_code == 2 and "--num-cpus" in result.stderr


def test_split_and_curve_warnings_are_the_commands_warning_lines(capsys):
    with _warnings_as_lines(SplitShareWarning, CurveSizeWarning):
        warnings.warn(SplitShareWarning("the split holds out 50.0%"), stacklevel=1)
        warnings.warn(CurveSizeWarning("5000 is more than the 3592"), stacklevel=1)
        with pytest.warns(UserWarning, match="another"):  # others as Python shows them
            warnings.warn("another", UserWarning, stacklevel=1)
    err = capsys.readouterr().err
    assert "warning: the split holds out 50.0%\n" in err
    assert "warning: 5000 is more than the 3592\n" in err


def test_a_job_file_as_task_gives_its_gold_columns_seed_and_bootstrap_unless_the_command_does(files):
    """Scoring a run's predictions (ids in "id", as runs write them) with its job file and its gold
    reads the gold as the run did: the job's id and label columns (here not "id" and "label"), its
    group column, its confidence level; an option on the command line still wins. Other gold gets
    the job's codebook only."""
    (files / "g.csv").write_text("doc,code,grp\na,x,1\nb,y,1\nc,x,2\nd,y,2\ne,x,3\nf,y,3\n")
    (files / "p.csv").write_text("id,label\na,x\nb,x\nc,x\nd,y\ne,x\nf,y\n")
    (files / "job.yaml").write_text(
        "task: {type: classification, labels: [x, y]}\n"
        "data: {gold: {path: g.csv, id_column: doc, label_column: code, group_column: grp}}\n"
        "evaluation: {seed: 3, bootstrap: {n: 40, confidence: 0.8}}\n"
        "backends: [{name: b, plugin: lexicon, params: {lexicon: l.txt}}]\n"
    )

    def scored(gold: str = "g.csv", *options: str) -> str:
        result = CliRunner().invoke(cli, ["score", "p.csv", gold, "--task", "job.yaml", *options])
        assert result.exit_code == 0, result.output
        return result.stdout

    from_job = scored()
    assert "with 80% percentile bootstrap intervals" in from_job
    scored("g.csv", "--json", "s.json")
    assert json.loads((files / "s.json").read_text())["resampled"] == "groups: grp"
    assert "The intervals resample whole groups (grp)" in from_job
    assert "with 90% percentile bootstrap intervals" in scored("g.csv", "--confidence", "0.9")
    assert scored() == from_job  # the job's seed: the same draws each time
    assert scored("./g.csv") == from_job  # the same file, however it is named
    # Another gold file (ids in "id", no group column): the job's codebook only, as before.
    (files / "other.csv").write_text("id,label\na,x\nb,y\nc,x\nd,y\ne,x\nf,y\n")
    assert "80%" not in scored("other.csv")
