"""A job file whose aliases multiply (a "billion laughs") is refused before it is expanded; a job that
shares options through anchors, as people write them, still loads."""

from __future__ import annotations

import pytest

from scalecode.config import load_job, read_yaml
from scalecode.errors import ConfigError

from .test_cli_errors import JOB


def laughs(depth: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, depth + 1):
        previous = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([previous] * 9)}]")
    return "\n".join(lines) + "\n"


def test_aliases_that_multiply_are_refused_before_they_are_expanded(tmp_path, plugins):
    job = tmp_path / "job.yaml"
    job.write_text(laughs(9))  # 9**10 values: hours and terabytes, were it expanded
    with pytest.raises(ConfigError, match="stands for over 100,000 values, counting what its aliases repeat"):
        load_job(job, plugins)


def test_anchors_that_share_options_still_load(tmp_path, plugins, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "g.csv").write_text("id,text,label\n1,a,x\n2,b,y\n")
    shared = JOB.replace(
        "  - {name: learned, plugin: learned-dictionary}\n",
        "  - {name: one, plugin: learned-dictionary, params: &common {min_df: 1}}\n"
        "  - {name: two, plugin: learned-dictionary, params: *common}\n",
    ).replace("OUT", "run")
    (tmp_path / "job.yaml").write_text(shared)
    job = load_job(tmp_path / "job.yaml", plugins)
    assert [b.name for b in job.backends] == ["one", "two"]
    data, _ = read_yaml(tmp_path / "job.yaml")
    assert data["backends"][1]["params"] == {"min_df": 1}
