"""A job submitted to a running Ray cluster (`ray start --head` + `ray job submit`), as on a cloud cluster."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def head(tmp_path):
    """A Ray head node of 2 CPUs in a session of its own, so that ending it ends all its processes.

    Started from this interpreter's environment: Ray runs submitted jobs with the PATH of whoever
    started the head. Authentication is off on both sides, on loopback only.
    """
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    port, dashboard = free_port(), free_port()
    process = subprocess.Popen(
        [
            f"{bin_dir}/ray",
            "start",
            "--head",
            "--block",
            "--num-cpus=2",
            f"--port={port}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard}",
            "--disable-usage-stats",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    address = f"http://127.0.0.1:{dashboard}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = subprocess.run(
            [f"{bin_dir}/ray", "job", "list", "--address", address],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if status.returncode == 0:
            break
        time.sleep(1)
    else:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("the Ray head did not start")
    yield address, env
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def test_a_job_submitted_to_a_running_cluster_codes_the_corpus(head, tmp_path):
    address, env = head
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for part in range(2):
        rows = [{"id": f"{part}-{i}", "text": "a good day" if i % 2 else "a bad day"} for i in range(100)]
        pl.DataFrame(rows).write_parquet(corpus / f"part-{part}.parquet")
    lexicon = tmp_path / "tone.csv"
    lexicon.write_text("term,weight\ngood,1\nbad,-1\n")
    job = tmp_path / "job.yaml"
    job.write_text(
        f"""
task: {{type: regression, scale: {{min: -1, max: 1}}}}
data:
  corpus: {{path: {corpus}}}
backends:
  - {{name: tone, plugin: lexicon, params: {{lexicon: {lexicon}}}}}
output: {{dir: {tmp_path / "run"}}}
"""
    )
    # The head answers `ray job list` before its job agent is up; on a loaded machine a submit in
    # that gap is refused with "No available agent to submit job, please try again later".
    deadline = time.monotonic() + 120
    while True:
        submitted = subprocess.run(
            [
                "ray",
                "job",
                "submit",
                "--address",
                address,
                "--",
                "scalecode",
                "run",
                str(job),
                "--no-progress",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if "No available agent" not in submitted.stderr + submitted.stdout or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    assert "succeeded" in submitted.stdout
    coded = pl.read_parquet(tmp_path / "run" / "predictions" / "corpus" / "tone")
    assert coded.height == 200 and coded["id"].n_unique() == 200
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["corpus"][0]["coded"] == 200


def test_cluster_yaml_is_a_valid_ray_cluster_launcher_config():
    """cluster.yaml against the schema Ray's cluster launcher (`ray up`) validates with."""
    import importlib.resources

    import jsonschema
    import yaml

    repo = Path(__file__).resolve().parent.parent
    config = yaml.safe_load((repo / "cluster.yaml").read_text())
    schema = json.loads((importlib.resources.files("ray.autoscaler") / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    assert config["head_node_type"] in config["available_node_types"]
    assert any("make install" in command for command in config["setup_commands"])
