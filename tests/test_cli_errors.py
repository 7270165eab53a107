"""A path the command cannot use is one line naming it and exit status 1, not a traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from scalecode.cli import cli

JOB = """\
task: {type: classification, labels: [x, y]}
data: {gold: {path: g.csv}}
backends:
  - {name: learned, plugin: learned-dictionary}
output: {dir: OUT}
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "g.csv").write_text(
        "id,text,label\n" + "".join(f"{i},text {i},{'xy'[i % 2]}\n" for i in range(20))
    )
    (tmp_path / "p.csv").write_text("id,label\n" + "".join(f"{i},x\n" for i in range(20)))
    return tmp_path


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_an_output_dir_that_is_a_file_is_an_error_naming_the_key(project):
    (project / "job.yaml").write_text(JOB.replace("OUT", "g.csv"))
    for command in ("validate", "plan", "run"):
        result = invoke(command, "job.yaml")
        assert result.exit_code == 1, (command, result.output)
        assert "error: job.yaml: output.dir: g.csv is a file" in result.output, command
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_an_output_option_overrides_an_output_dir_that_is_a_file(project):
    (project / "job.yaml").write_text(JOB.replace("OUT", "g.csv"))
    result = invoke("plan", "job.yaml", "--output", "elsewhere")
    assert result.exit_code == 0, result.output


def test_an_output_option_that_is_a_file_is_named(project):
    """From the command line, click refuses the option (a usage error: exit status 2); from Python,
    the runner refuses the directory before it reads or writes anything there."""
    from scalecode.config import load_job
    from scalecode.errors import ScalecodeError
    from scalecode.plugins import load_plugins
    from scalecode.runner import Runner

    (project / "job.yaml").write_text(JOB.replace("OUT", "run"))
    (project / "taken").write_text("not a folder\n")
    result = invoke("run", "job.yaml", "--output", "taken")
    assert result.exit_code == 2 and "'taken' is a file" in result.output
    plugins = load_plugins(allow=["scalecode-dictionary"])
    job = load_job("job.yaml", plugins)
    with pytest.raises(ScalecodeError, match=r"the run directory .*taken is a file"):
        Runner(job, plugins, out=project / "taken", echo=lambda line: None, progress=False).run()
    assert (project / "taken").read_text() == "not a folder\n"


def test_a_json_path_that_cannot_be_written_is_one_line_naming_it(project):
    result = invoke("score", "p.csv", "g.csv", "--task", "classification", "--json", "nodir/out.json")
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "error: No such file or directory: nodir/out.json" in result.output
    assert "accuracy" not in result.output  # the report is not printed above an error about it


def test_a_job_file_in_an_unreadable_place_is_named(project):
    (project / "job.yaml").mkdir()  # a folder where the job file should be
    result = invoke("validate", "job.yaml")
    assert result.exit_code in (1, 2) and "job.yaml" in result.output
    assert "Traceback" not in result.output
