"""Downloading pinned archives: from the index pip is configured with, checked before anything runs."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import socket
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scalecode.datasets import Package, download
from scalecode.errors import ScalecodeError


def sdist(marker: Path, payload: str) -> bytes:
    """An sdist whose build backend would leave ``marker`` behind if anything ran it."""
    setup = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
    setup += "from setuptools import setup\nsetup()\n"
    backend = '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
    files = {
        "evil-1.0/setup.py": setup,
        "evil-1.0/pyproject.toml": backend,
        "evil-1.0/PKG-INFO": "Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n",
        "evil-1.0/data.txt": payload,
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def index(root: Path, files: dict[str, bytes], *, hashes: bool = True) -> Path:
    """A PEP 503 simple index under ``root``: simple/evil/index.html linking to ../../files/."""
    (root / "files").mkdir(parents=True)
    (root / "simple" / "evil").mkdir(parents=True)
    anchors = []
    for name, data in files.items():
        (root / "files" / name).write_bytes(data)
        fragment = f"#sha256={hashlib.sha256(data).hexdigest()}" if hashes else ""
        anchors.append(f'<a href="../../files/{name}{fragment}">{name}</a>')
    (root / "simple" / "evil" / "index.html").write_text(f"<html><body>{''.join(anchors)}</body></html>")
    return root / "simple"


class Handler(SimpleHTTPRequestHandler):
    seen: list[tuple[str, str | None]]

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, list[tuple[str, str | None]]]]:
    """A loopback HTTP server over tmp_path/www: (its URL, its folder, the requests it saw)."""
    root = tmp_path / "www"
    root.mkdir()
    seen: list[tuple[str, str | None]] = []
    handler = type("Recording", (Handler,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root, seen
    server.shutdown()
    server.server_close()


@pytest.fixture
def pip_commands(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[list[str]]:
    """pip configured by environment alone (no config files, no find-links); every command run."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SCALECODE_CACHE", str(tmp_path / "cache"))
    commands: list[list[str]] = []
    run = subprocess.run

    def recording(command: list[str], *args: object, **kwargs: object) -> object:
        commands.append(list(command))
        return run(command, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(subprocess, "run", recording)
    return commands


def test_pinned_sdist_is_fetched_from_the_configured_index_without_running_it(
    served, pip_commands, monkeypatch, tmp_path
):
    """The old ``pip download --no-binary :all:`` installed build requirements and ran setup.py to
    prepare metadata: nothing but ``pip config list`` may run now, and the credentials in the index
    URL are sent."""
    url, root, seen = served
    marker = tmp_path / "ran"
    archive = sdist(marker, "the real data")
    index(root, {"evil-1.0.tar.gz": archive, "evil-0.9.tar.gz": b"another version"})
    monkeypatch.setenv("PIP_INDEX_URL", url.replace("http://", "http://someone:s%40cret@") + "/simple")

    path = download(Package("Evil", "1.0", "evil-1.0.tar.gz", hashlib.sha256(archive).hexdigest()))

    assert path.read_bytes() == archive
    assert not marker.exists()
    assert all(command[1:4] == ["-m", "pip", "config"] for command in pip_commands), pip_commands
    assert [p for p, _ in seen] == ["/simple/evil/", "/files/evil-1.0.tar.gz"]
    assert seen[0][1] == "Basic " + base64.b64encode(b"someone:s@cret").decode()
    # cached: no request, no pip
    pip_commands.clear()
    assert download(Package("evil", "1.0", "evil-1.0.tar.gz", hashlib.sha256(archive).hexdigest())) == path
    assert pip_commands == []
    assert len(seen) == 2


def test_tampered_archive_is_refused_before_anything_runs_or_is_kept(
    served, pip_commands, monkeypatch, tmp_path
):
    url, root, seen = served
    marker = tmp_path / "ran"
    pinned = hashlib.sha256(sdist(marker, "the real data")).hexdigest()
    index(root, {"evil-1.0.tar.gz": sdist(marker, "tampered data")}, hashes=False)
    monkeypatch.setenv("PIP_INDEX_URL", f"{url}/simple")

    with pytest.raises(ScalecodeError, match="does not match the expected " + pinned):
        download(Package("evil", "1.0", "evil-1.0.tar.gz", pinned))

    assert not marker.exists()
    assert list((tmp_path / "cache" / "packages").iterdir()) == []  # neither the archive nor a part of it
    assert all(command[1:4] == ["-m", "pip", "config"] for command in pip_commands), pip_commands
    # an index that lists the file with another hash: not even downloaded
    seen.clear()
    (root / "simple" / "evil" / "index.html").write_text(
        '<a href="../../files/evil-1.0.tar.gz#sha256=' + "0" * 64 + '">evil-1.0.tar.gz</a>'
    )
    with pytest.raises(ScalecodeError, match="listed with sha256 0000"):
        download(Package("evil", "1.0", "evil-1.0.tar.gz", pinned))
    assert [p for p, _ in seen] == ["/simple/evil/"]


def test_wheel_from_an_extra_index_or_find_links_when_the_index_lacks_it(
    served, pip_commands, monkeypatch, tmp_path
):
    url, _, _ = served  # serves nothing: a 404 for the project
    wheel = b"PK not really a wheel, never opened here"
    pinned = hashlib.sha256(wheel).hexdigest()
    local = index(tmp_path / "mirror", {"evil-1.0-py3-none-any.whl": wheel})
    monkeypatch.setenv("PIP_INDEX_URL", f"{url}/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", local.as_uri())

    path = download(Package("evil", "1.0", "evil-1.0-py3-none-any.whl", pinned))
    assert path.read_bytes() == wheel

    path.unlink()
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "mirror" / "files"))
    assert download(Package("evil", "1.0", "evil-1.0-py3-none-any.whl", pinned)).read_bytes() == wheel

    monkeypatch.delenv("PIP_FIND_LINKS")
    path.unlink()
    with pytest.raises(
        ScalecodeError, match=r"could not download evil-1\.0-py3-none-any\.whl .*none lists it"
    ):
        download(Package("evil", "1.0", "evil-1.0-py3-none-any.whl", pinned))


class Faulty(SimpleHTTPRequestHandler):
    """Serves its folder, except: /odd-charset/ pages in a charset no codec has, and /cut/ files whose
    chunked body ends early (a connection lost mid-download: http.client raises IncompleteRead)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.startswith("/odd-charset/"):
            body = b'<a href="/files/evil-1.0-py3-none-any.whl">evil-1.0-py3-none-any.whl</a>'
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=no-such-codec")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.startswith("/cut/"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"%x\r\n" % 5000 + b"x" * 1000)  # a chunk of 5,000 bytes promised, 1,000 sent
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def faulty(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server over tmp_path/faulty (see Faulty): (its URL, its folder)."""
    root = tmp_path / "faulty"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Faulty, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def evil_wheel(root: Path, mirror: Path) -> tuple[Package, bytes, Path]:
    """A wheel that the faulty server's /simple/ index lists at a /cut/ URL, and ``mirror`` serves whole."""
    wheel = b"PK the real wheel"
    pinned = Package("evil", "1.0", "evil-1.0-py3-none-any.whl", hashlib.sha256(wheel).hexdigest())
    (root / "simple" / "evil").mkdir(parents=True)
    (root / "simple" / "evil" / "index.html").write_text(
        '<a href="/cut/evil-1.0-py3-none-any.whl">evil-1.0-py3-none-any.whl</a>'
    )
    return pinned, wheel, index(mirror, {"evil-1.0-py3-none-any.whl": wheel})


@pytest.fixture
def evil(faulty, pip_commands, monkeypatch, tmp_path):
    """The faulty server as pip's first index (its page at ``path`` under it), a mirror serving the
    wheel whole as the next: (the server's URL, the package, its wheel's bytes)."""
    url, root = faulty
    pinned, wheel, good = evil_wheel(root, tmp_path / "mirror")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", good.as_uri())
    return url, pinned, wheel


def test_a_download_cut_short_moves_on_to_the_next_index(evil, monkeypatch):
    """IncompleteRead is an http.client.HTTPException, not an OSError: it used to end the fetch with
    a traceback, the indexes after it never tried."""
    url, pinned, wheel = evil
    monkeypatch.setenv("PIP_INDEX_URL", f"{url}/simple")
    path = download(pinned)
    assert path.read_bytes() == wheel
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no part of the cut download kept


def test_an_odd_charset_moves_on_to_the_next_index_and_every_failure_is_named(evil, monkeypatch):
    """An index page in a charset no codec has raised LookupError, uncaught as well."""
    url, pinned, wheel = evil
    monkeypatch.setenv("PIP_INDEX_URL", f"{url}/odd-charset")
    path = download(pinned)
    assert path.read_bytes() == wheel

    path.unlink()
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", f"{url}/simple")
    with pytest.raises(ScalecodeError) as raised:
        download(pinned)
    message = str(raised.value)
    assert f"{url}/odd-charset/evil/: unknown encoding: no-such-codec" in message
    assert f"{url}/cut/evil-1.0-py3-none-any.whl: IncompleteRead(" in message
    assert list(path.parent.iterdir()) == []
