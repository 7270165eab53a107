"""No credential written in a job file reaches job.json, the manifest or ``scalecode plan``'s output.

Every string of the job is checked at load (data paths, backend params, training options, the
codebook), and what is written or printed is redacted besides.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from scalecode.backend import Estimate
from scalecode.config import literal_secrets, load_job
from scalecode.errors import ConfigError
from scalecode.plan import PlanRow, render
from scalecode.plugins import load_plugins
from scalecode.runner import _claim, run_identity

SECRETS = ("wJalrXUtnFEMI", "abcd1234secret", "dXNlcjpwYXNz", "hunter2", "tok123", "AKIAEXAMPLE")

REVIEWED = """\
task: {type: regression, scale: {min: -4, max: 4}}
data:
  corpus:
    path: "s3://AKIAEXAMPLE:wJalrXUtnFEMI@mybucket/corpus/"
backends:
  - name: gpt
    plugin: openai
    params:
      model: gpt-4o-mini
      base_url: "https://gateway.example.com/v1?api-key=abcd1234secret"
      extra_body: {headers: {Authorization: "Basic dXNlcjpwYXNz"}}
output: {dir: out}
"""


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(allow=["scalecode-dictionary", "scalecode-openai"])


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gold.csv").write_text("id,text,label\n1,good day,3\n2,bad day,-1\n")
    (tmp_path / "lex.txt").write_text("good\t2.0\nbad\t-2.0\n")
    return tmp_path


def load(workdir: Path, plugins, text: str):
    path = workdir / "job.yaml"
    path.write_text(textwrap.dedent(text))
    return load_job(path, plugins)


def refused(workdir: Path, plugins, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(workdir, plugins, text)
    assert not [s for s in SECRETS if s in str(info.value)], "the error repeats the secret"
    return info.value


def test_the_reviewed_job_is_refused_naming_each_field(workdir, plugins):
    error = refused(workdir, plugins, REVIEWED)
    keys = {key: message for key, message, _ in error.problems}
    assert set(keys) == {
        "data.corpus.path",
        "backends[0].params.base_url",
        "backends[0].params.extra_body.headers.Authorization",
    }
    # Each says how to give it instead: the environment, never the job file.
    assert "AWS_ACCESS_KEY_ID" in keys["data.corpus.path"]
    assert "s3://bucket/corpus/" in keys["data.corpus.path"]
    assert "'api-key'" in keys["backends[0].params.base_url"]
    assert 'base_url: {"$env": "VARIABLE_NAME"}' in keys["backends[0].params.base_url"]
    assert all("secrets come from the environment" in m for m in keys.values())


@pytest.mark.parametrize(
    "value",
    [
        "https://tok123@host/",
        "https://u:p/ss@host",  # an AWS secret key holds '/'
        "https://u:1234@host",
        "s3://AKIAEXAMPLE:wJalrXUtnFEMI@mybucket/corpus/",
        "https://gateway.example.com/v1?api-key=abcd1234secret",
        "https://host/v1?key=abc&x=1",
        "https://host/v1?access_token=abc",
        "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=abc123",
        "https://acct.blob.core.windows.net/c?sv=2020&sig=abc%3D",
        "Basic dXNlcjpwYXNz",
        "Bearer abc.def",
        "Authorization: Bearer eyJhbGciOi.x",
        "sk-abcdefghijklmnop1234",
        "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
    ],
)
def test_credentials_in_any_form_are_found(value):
    from scalecode.config import redact_text

    assert literal_secrets({"anything": value}) == [("anything",)]
    assert not [s for s in SECRETS if s in redact_text(value)]
    assert "***" in redact_text(value)


@pytest.mark.parametrize(
    "value",
    [
        "s3://bucket/path",
        "gs://bucket/data/",
        "hf://datasets/org/name",
        "cardiffnlp/twitter-roberta-base-sentiment-latest",
        "data/me@work/gold.csv",  # userinfo matters only in a URL with a scheme
        "https://gateway.example.com/v1",
        "http://127.0.0.1:8000/v1",
        "http://[::1]:8000/v1",
        "https://host:8080/@user",
        "https://mastodon.social/@Gargron",
        "https://example.com/search?q=tax&page=2",
        "Basic income",
        "Bearer bonds",
        "Authorization: whether the speaker grants permission",
        "models/hf_finetuned_roberta_large",
        "sk-learn-pipeline-version",
    ],
)
def test_legitimate_values_pass_and_print_unchanged(value):
    from scalecode.config import redact_text, secret_kind

    assert secret_kind("value", value) is None
    assert redact_text(value) == value


def test_a_job_with_plain_locations_and_endpoints_loads(workdir, plugins, monkeypatch):
    monkeypatch.setenv("TEST_GATEWAY_KEY", "sk-from-the-environment-0000")
    job = load(
        workdir,
        plugins,
        """\
        task: {type: regression, scale: {min: -4, max: 4}}
        data:
          gold: {path: gold.csv}
          corpus: {path: "s3://mybucket/corpus/"}
        backends:
          - name: gpt
            plugin: openai
            params:
              model: gpt-4o-mini
              base_url: https://gateway.example.com/v1
              api_key: {"$env": TEST_GATEWAY_KEY}
        output: {dir: out}
        """,
    )
    assert job.config.data.corpus is not None
    assert job.config.data.corpus.path == "s3://mybucket/corpus/"


@pytest.mark.parametrize(
    ("where", "text"),
    [
        ("data.gold.path", "https://tok123@example.com/gold.csv"),
        ("data.gold.where", "text != 'https://u:hunter2@host/'"),
        ("task.instructions", "Call https://host/v1?token=tok123 for help."),
    ],
)
def test_secrets_outside_backend_params_are_refused(workdir, plugins, where, text):
    section, key = where.rsplit(".", 1)
    job = {
        "task": {"type": "regression", "scale": {"min": -4, "max": 4}},
        "data": {"gold": {"path": "gold.csv"}},
        "backends": [{"name": "lex", "plugin": "lexicon", "params": {"lexicon": "lex.txt"}}],
        "output": {"dir": "out"},
    }
    parent = job
    for part in section.split("."):
        parent = parent[part]
    parent[key] = text
    error = refused(workdir, plugins, json.dumps(job))
    assert error.key == where
    assert "secrets come from the environment" in str(error)


def test_secrets_in_training_options_are_refused(workdir, plugins):
    error = refused(
        workdir,
        plugins,
        """\
        task: {type: regression, scale: {min: -4, max: 4}}
        data: {gold: {path: gold.csv}}
        backends:
          - name: lex
            plugin: lexicon
            params: {lexicon: lex.txt}
            train: {password: hunter2}
        output: {dir: out}
        """,
    )
    assert error.key == "backends[0].train.password"


def test_job_json_holds_no_credential_however_one_came(workdir, plugins):
    """Load refuses literal secrets; job.json is redacted besides (a job built in code, say)."""
    job = load(
        workdir,
        plugins,
        """\
        task: {type: regression, scale: {min: -4, max: 4}}
        data: {gold: {path: gold.csv}}
        backends:
          - {name: lex, plugin: lexicon, params: {lexicon: lex.txt}}
        output: {dir: out}
        """,
    )
    assert job.config.data.gold is not None
    gold = job.config.data.gold.model_copy(update={"path": "https://u:hunter2@host/gold.csv?token=tok123"})
    data = job.config.data.model_copy(update={"gold": gold})
    job = type(job)(path=job.path, config=job.config.model_copy(update={"data": data}), backends=job.backends)
    out = workdir / "run"
    out.mkdir()
    _claim(out, job, run_identity(job, None, {}))
    written = (out / "job.json").read_text()
    assert "hunter2" not in written and "tok123" not in written
    assert json.loads(written)["job"]["data"]["gold"]["path"] == "https://***@host/gold.csv?token=***"


def test_redaction_keeps_environment_references():
    from scalecode.config import redact

    params = {"api_key": {"$env": "KEY"}, "password": "p", "headers": ["Bearer abc.def"], "n": 3}
    assert redact(params) == {
        "api_key": {"$env": "KEY"},
        "password": "***",
        "headers": ["Bearer ***"],
        "n": 3,
    }


def test_plan_prints_no_credential_from_a_backend_note():
    """A backend's note names its endpoint, which may come from the environment with a key in it."""
    note = "gpt-4o-mini at https://me:hunter2@gateway.example.com/v1?api-key=abcd1234secret"
    text = render([PlanRow("gpt", "gold test", Estimate(documents=1, requests=1, notes=(note,)))])
    assert "hunter2" not in text and "abcd1234secret" not in text
    assert "gpt-4o-mini at https://***@gateway.example.com/v1?api-key=***" in text
