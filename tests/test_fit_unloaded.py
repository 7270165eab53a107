"""The runner trains a backend without loading it first: ``fit`` loads what it needs.

A model backend trains on Ray Train's workers; its weights loaded in the driver as well (a head node,
perhaps without a GPU) would take the memory of a model for nothing.
"""

from __future__ import annotations

import textwrap

from scalecode.config import load_job
from scalecode.plugins import load_plugins
from scalecode.runner import Runner
from scalecode.testing import sample_gold


def test_the_runner_calls_fit_on_a_backend_it_has_not_loaded(tmp_path, monkeypatch):
    from scalecode_dictionary.backends import LexiconBackend

    monkeypatch.chdir(tmp_path)
    rows = "\n".join(f"{i},{'good' if i % 2 else 'bad'} day {i},{1 if i % 2 else -1}" for i in range(40))
    (tmp_path / "gold.csv").write_text(f"id,text,label\n{rows}\n")
    (tmp_path / "lex.txt").write_text("good\t2.0\nbad\t-2.0\n")
    (tmp_path / "job.yaml").write_text(
        textwrap.dedent("""\
        task: {type: regression, scale: {min: -4, max: 4}}
        data: {gold: {path: gold.csv}}
        backends:
          - {name: calibrated, plugin: lexicon, params: {lexicon: lex.txt}, train: true}
        output: {dir: out}
        """)
    )
    plugins = load_plugins(allow=["scalecode-dictionary"])
    job = load_job(tmp_path / "job.yaml", plugins)
    loaded_at_fit: list[bool] = []
    fit = LexiconBackend.fit

    def recording_fit(self, train, eval, config):
        loaded_at_fit.append(self.scorer is not None)
        return fit(self, train, eval, config)

    monkeypatch.setattr(LexiconBackend, "fit", recording_fit)
    runner = Runner(job, plugins, out=tmp_path / "out", echo=lambda line: None, progress=False)
    train = sample_gold(job.task, n=30)
    report = runner._fit(job.backends[0], tmp_path / "state", train, tmp_path / "checkpoints")
    assert loaded_at_fit == [False]
    assert report.n_train == len(train)  # and fit loaded the lexicon itself
    assert (tmp_path / "state" / "fit.json").is_file()
