"""Lexicons in the formats researchers already have, read into one model.

Formats:

- LIWC-style ``.dic``: a header of ``number<TAB>category`` lines between ``%`` lines, then one entry per
  line with its category numbers.
- quanteda-style YAML: ``category: [terms]``, nested mappings giving ``parent.child`` categories; a
  top-level ``Dictionary:`` key (as cntext ships them) is unwrapped; ``category: {term: weight}``
  gives weights.
- CSV/TSV: ``term, weight`` (a valence lexicon), ``term, category`` or ``term, category, weight``, with
  or without a header; ``.txt`` files are read as headerless TSV (VADER's and AFINN's layout).

Entries are tokenised with the text's own rule (tokenize.py), so ``can't stand`` and ``well-known``
become two-token phrases and match the text exactly as written. A trailing ``*`` makes the last token
a prefix (``abandon*`` matches ``abandon``, ``abandoned``, ``abandonment``). An entry that is not
made of words (VADER's emoticons such as ``:D`` or ``<3``) is skipped and counted in the warnings. A
valence lexicon (one weight per term, no categories) gets a weighted category ``valence`` and count
categories ``positive`` and ``negative`` by the sign of the weight.

Files are UTF-8 unless an ``encoding`` is given (LIWC ``.dic`` files are often Latin-1).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scalecode_dictionary.tokenize import tokenize

VALENCE = "valence"
POSITIVE_NAMES = ("positive", "pos", "posemo", "neg_negative")
NEGATIVE_NAMES = ("negative", "neg", "negemo", "neg_positive")
TERM_COLUMNS = ("term", "word", "token", "entry", "pattern", "words", "terms")
WEIGHT_COLUMNS = ("weight", "score", "value", "valence", "polarity", "sentiment", "mean")
CATEGORY_COLUMNS = ("category", "cat", "categories", "class", "dimension", "label", "key")
COLUMN_ROLES = ("term", "weight", "category")
MAX_PHRASE_TOKENS = 8
# What a term may be written with: word characters, spaces, hyphens and apostrophes. Anything else
# (':D', '<3', 'j/k') is an emoticon or punctuation: tokenising it would leave stray one-letter or
# one-digit "words" ('d', '3') that match "U.S." or "3,000" in ordinary text.
WORD_TERM = re.compile(r"[\w\s'’-]+")
# Hyphenated one-character parts ('x-d', '8-d', '0-8') are emoticons too, not words.
SINGLE_CHARACTER_PARTS = re.compile(r"\w(?:\s*-\s*\w)+")


class LexiconError(ValueError):
    """A lexicon file cannot be read as given; the message names the file and line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Entry:
    """One lexicon entry: its normalised tokens, whether the last is a prefix, and its weights."""

    tokens: tuple[str, ...]
    wildcard: bool
    weights: tuple[tuple[str, float], ...]  # (category, weight)

    @property
    def text(self) -> str:
        return " ".join(self.tokens) + ("*" if self.wildcard else "")


@dataclass
class Lexicon:
    """Categories and entries, with the categories that carry weights and the polar pairs."""

    name: str
    categories: list[str]
    entries: list[Entry]
    weighted: set[str] = field(default_factory=set)
    positive: list[str] = field(default_factory=list)
    negative: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    sha256: str | None = None

    def restrict(self, categories: Sequence[str]) -> Lexicon:
        """Keep only some categories (and the entries that still have one)."""
        unknown = [c for c in categories if c not in self.categories]
        if unknown:
            raise ValueError(f"unknown categories {unknown}; the lexicon has {self.categories}")
        keep = set(categories)
        entries = []
        for entry in self.entries:
            weights = tuple((c, w) for c, w in entry.weights if c in keep)
            if weights:
                entries.append(Entry(entry.tokens, entry.wildcard, weights))
        return Lexicon(
            name=self.name,
            categories=[c for c in self.categories if c in keep],
            entries=entries,
            weighted=self.weighted & keep,
            positive=[c for c in self.positive if c in keep],
            negative=[c for c in self.negative if c in keep],
            warnings=list(self.warnings),
            sha256=self.sha256,
        )


class _Builder:
    """Collects (term, category, weight) rows into entries, tokenising terms and catching duplicates."""

    def __init__(self, path: str | Path, prefix_match: bool) -> None:
        self.path = path
        self.prefix_match = prefix_match
        self.categories: list[str] = []
        self.order: list[tuple[tuple[str, ...], bool]] = []
        self.weights: dict[tuple[tuple[str, ...], bool], dict[str, float]] = {}
        self.not_words: list[str] = []
        self.duplicates: list[str] = []

    def add(self, term: str, category: str, weight: float, line: int | None) -> bool:
        """Add one (term, category, weight); False when skipped (not a word) or a repeat."""
        raw = term.strip()
        if not raw:
            return False
        # A '*' right after a word is a wildcard; a '*' between word characters is a glob we do not
        # support; any other '*' is punctuation (VADER's emoticons such as "*\\0/*").
        trailing = raw.endswith("*") and len(raw) > 1 and bool(tokenize(raw[-2]))
        body = raw[:-1] if trailing else raw
        if re.search(r"\w\*+\w", body):
            raise LexiconError(self.path, f"entry {raw!r}: only a trailing '*' wildcard is supported", line)
        if not is_word_term(body):
            self.not_words.append(raw)
            return False
        wildcard = trailing or self.prefix_match
        tokens = tuple(tokenize(body))
        if len(tokens) > MAX_PHRASE_TOKENS:
            raise LexiconError(self.path, f"entry {raw!r} has more than {MAX_PHRASE_TOKENS} tokens", line)
        if category not in self.categories:
            self.categories.append(category)
        key = (tokens, wildcard)
        if key not in self.weights:
            self.order.append(key)
            self.weights[key] = {}
        if category in self.weights[key]:
            self.duplicates.append(raw)
            return False
        self.weights[key][category] = weight
        return True

    def build(self, name: str, weighted: Iterable[str] = ()) -> Lexicon:
        entries = [
            Entry(tokens, wildcard, tuple(self.weights[(tokens, wildcard)].items()))
            for tokens, wildcard in self.order
        ]
        warnings = []
        if self.not_words:
            warnings.append(
                f"{len(self.not_words)} entries are not words (emoticons or punctuation) and can never "
                f"match a word token; skipped (e.g. {', '.join(self.not_words[:5])})"
            )
        if self.duplicates:
            warnings.append(
                f"{len(self.duplicates)} entries repeat an earlier entry of the same category once "
                f"lower-cased; the first is kept (e.g. {', '.join(self.duplicates[:5])})"
            )
        lexicon = Lexicon(
            name=name,
            categories=list(self.categories),
            entries=entries,
            weighted=set(weighted),
            warnings=warnings,
        )
        lexicon.positive = [c for c in POSITIVE_NAMES if c in lexicon.categories]
        lexicon.negative = [c for c in NEGATIVE_NAMES if c in lexicon.categories]
        return lexicon


def is_word_term(term: str) -> bool:
    """Whether a term (without its wildcard '*') is words: word characters, spaces, '-' and "'"."""
    # Combining marks (Devanagari and Thai vowel signs, Arabic harakat, a decomposed é) are parts of
    # words, but Python's \w does not match them.
    letters = "".join(c for c in term if not unicodedata.category(c).startswith("M"))
    return (
        bool(tokenize(term))
        and WORD_TERM.fullmatch(letters) is not None
        and SINGLE_CHARACTER_PARTS.fullmatch(letters) is None
    )


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """The file's text; a byte the encoding cannot decode is a LexiconError naming its line and offset."""
    data = path.read_bytes()
    # utf-8-sig also drops the byte order mark Windows tools write at the start of UTF-8 files.
    codec = "utf-8-sig" if _codec_name(path, encoding) == "utf-8" else encoding
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        decoded = exc.object[: exc.start]  # the error's offsets exclude a byte order mark
        line = decoded.count(b"\n") + 1
        offset = len(data) - len(exc.object) + exc.start
        raise LexiconError(
            path,
            f"not {encoding} text: byte 0x{exc.object[exc.start]:02x} at offset {offset} cannot be "
            f"decoded; re-encode the file as UTF-8 (iconv -f latin1 -t utf-8) or set encoding "
            "(e.g. latin-1)",
            line,
        ) from None


def _codec_name(path: Path, encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise LexiconError(path, f"unknown encoding {encoding!r}") from None


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def read_dic(path: Path, prefix_match: bool = False, encoding: str = "utf-8") -> Lexicon:
    """A LIWC-style .dic file."""
    lines = read_text(path, encoding).splitlines()
    markers = [i for i, line in enumerate(lines) if line.strip() == "%"]
    if len(markers) < 2:
        raise LexiconError(path, "a .dic file starts with a category block between two '%' lines")
    names: dict[int, str] = {}  # by number: entries may write 2 or 02
    for i in range(markers[0] + 1, markers[1]):
        parts = lines[i].split()
        if not parts:
            continue
        if len(parts) < 2 or not parts[0].isdigit():
            raise LexiconError(path, f"category line {lines[i]!r} needs a number and a name", i + 1)
        names[int(parts[0])] = parts[1]
    builder = _Builder(path, prefix_match)
    builder.categories = list(names.values())
    conditional = 0
    for i in range(markers[1] + 1, len(lines)):
        line = lines[i].strip()
        if not line:
            continue
        if "\t" in line:
            term, _, rest = line.partition("\t")
            codes = rest.split()
        else:
            parts = line.split()
            cut = len(parts)
            while cut > 1 and re.fullmatch(r"\d+", parts[cut - 1]):
                cut -= 1
            term, codes = " ".join(parts[:cut]), parts[cut:]
        for code in codes:
            if not code.isdigit():
                conditional += 1  # LIWC2007's conditional codes like 02/50 or (02 134)126
                continue
            if int(code) not in names:
                raise LexiconError(
                    path, f"entry {term!r} uses category {code}, not declared in the header", i + 1
                )
            builder.add(term, names[int(code)], 1.0, i + 1)
    lexicon = builder.build(path.stem)
    if conditional:
        lexicon.warnings.append(f"{conditional} conditional category codes (LIWC2007 style) were ignored")
    return lexicon


STR_TAG = "tag:yaml.org,2002:str"
# Tags YAML gives plain scalars by their look: 'no' is a bool, '~' null, '3.10' the float 3.1.
IMPLICIT_TAGS = frozenset(
    f"tag:yaml.org,2002:{kind}" for kind in ("bool", "null", "int", "float", "timestamp")
)


class _TermLoader(yaml.SafeLoader):
    """A safe YAML loader that keeps every term (list item or mapping key) as the string written.

    Without it ``[no, off, 3.10]`` reads as ``[False, False, 3.1]``. Mapping values keep their types,
    so ``{very: 1.5}`` still gives a weight.
    """

    def construct_document(self, node: yaml.Node) -> Any:
        _keep_terms_as_written(node, set())
        return super().construct_document(node)


def _keep_terms_as_written(node: yaml.Node, seen: set[int]) -> None:
    if id(node) in seen:  # an alias can make the graph cyclic
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        terms, children = list(node.value), list(node.value)
    elif isinstance(node, yaml.MappingNode):
        terms = [key for key, _ in node.value]
        children = [*terms, *(value for _, value in node.value)]
    else:
        return
    for term in terms:
        if isinstance(term, yaml.ScalarNode) and term.style is None and term.tag in IMPLICIT_TAGS:
            term.tag = STR_TAG
    for child in children:
        _keep_terms_as_written(child, seen)


def _yaml_categories(node: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    if isinstance(node, Mapping):
        if (
            node
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in node.values())
            and prefix
        ):
            yield prefix, node  # category: {term: weight}
            return
        for key, value in node.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            yield from _yaml_categories(value, name)
    elif isinstance(node, list):
        yield prefix, node
    elif node is not None:
        raise ValueError(
            f"category {prefix!r}: expected a list of terms or a mapping, got {type(node).__name__}"
        )


def read_yaml(path: Path, prefix_match: bool = False, encoding: str = "utf-8") -> Lexicon:
    """A quanteda-style YAML dictionary (or cntext's, with a top-level ``Dictionary:``)."""
    text = read_text(path, encoding)
    try:
        data = yaml.load(text, Loader=_TermLoader)  # a SafeLoader: constructs no Python objects
    except yaml.YAMLError as exc:
        raise LexiconError(path, f"invalid YAML: {exc}") from None
    if isinstance(data, Mapping) and "Dictionary" in data:
        data = data["Dictionary"]
    if not isinstance(data, Mapping):
        raise LexiconError(path, "a YAML lexicon maps category names to lists of terms")
    builder = _Builder(path, prefix_match)
    weighted = set()
    try:
        categories = list(_yaml_categories(data))
    except ValueError as exc:
        raise LexiconError(path, str(exc)) from None
    for category, terms in categories:
        if isinstance(terms, Mapping):
            weighted.add(category)
            for term, weight in terms.items():
                builder.add(str(term), category, float(weight), None)
        else:
            for term in terms:
                builder.add(str(term), category, 1.0, None)
    return builder.build(path.stem, weighted)


def read_table(
    path: Path,
    prefix_match: bool = False,
    delimiter: str | None = None,
    columns: Mapping[str, str] | None = None,
    encoding: str = "utf-8",
) -> Lexicon:
    """A CSV/TSV lexicon: term→weight (valence), term→category, or term, category, weight."""
    unknown = sorted(set(columns or {}) - set(COLUMN_ROLES))
    if unknown:
        raise LexiconError(
            path, f"columns: unknown roles {unknown}; name columns for {', '.join(COLUMN_ROLES)}"
        )
    text = read_text(path, encoding)
    if delimiter is None:
        delimiter = "," if path.suffix.lower() == ".csv" else "\t"
    # TSV lexicons (VADER, AFINN) contain quote characters that are not quoting.
    rows = (
        list(csv.reader(io.StringIO(text), delimiter=delimiter))
        if delimiter == ","
        else list(csv.reader(io.StringIO(text), delimiter=delimiter, quoting=csv.QUOTE_NONE))
    )
    numbered = [(i + 1, row) for i, row in enumerate(rows) if row and any(cell.strip() for cell in row)]
    if not numbered:
        raise LexiconError(path, "no entries")
    first = [c.strip().lower() for c in numbered[0][1]]
    has_header = columns is not None or (
        any(c in TERM_COLUMNS for c in first) and not (len(first) > 1 and _number(first[1]) is not None)
    )
    term_i: int = 0
    weight_i: int | None = 1
    category_i: int | None = None
    if not has_header and len(first) > 1 and _number(first[1]) is None:
        later = [row for _, row in numbered[1:] if len(row) > 1]
        if later and any(_number(row[1].strip()) is not None for row in later):
            # Numbers below a word: the first row is a header whose names we do not know.
            raise LexiconError(
                path,
                f"the first row {numbered[0][1]!r} looks like a header with unknown column names; "
                "set columns: {term: ..., weight: ...} (or category)",
                numbered[0][0],
            )
        # term, category[, weight]: a second column that is not a number names the category.
        category_i, weight_i = 1, (2 if len(first) > 2 else None)
    if has_header:
        lookup = {name: i for i, name in enumerate(first)}
        wanted = dict(columns or {})

        def find(role: str, candidates: Sequence[str]) -> int | None:
            if role in wanted:
                if wanted[role].lower() not in lookup:
                    raise LexiconError(path, f"no column {wanted[role]!r} for the {role}; columns: {first}")
                return lookup[wanted[role].lower()]
            return next((lookup[c] for c in candidates if c in lookup), None)

        found_term = find("term", TERM_COLUMNS)
        if found_term is None:
            raise LexiconError(
                path, f"no term column among {first}; name it 'term' or set columns: {{term: ...}}"
            )
        term_i, weight_i, category_i = (
            found_term,
            find("weight", WEIGHT_COLUMNS),
            find("category", CATEGORY_COLUMNS),
        )
        if weight_i is None and category_i is None:
            raise LexiconError(path, f"no weight or category column among {first}")
        numbered = numbered[1:]
    builder = _Builder(path, prefix_match)
    valence = category_i is None
    for line, row in numbered:
        if len(row) <= max(i for i in (term_i, weight_i, category_i) if i is not None):
            raise LexiconError(path, f"row {row!r} has too few columns", line)
        term = row[term_i]
        weight = 1.0
        if weight_i is not None:
            value = _number(row[weight_i].strip())
            if value is None:
                raise LexiconError(path, f"weight {row[weight_i]!r} of {term!r} is not a number", line)
            weight = value
            if category_i is not None and weight == 0:
                continue  # a 0 marks a term as outside the category (NRC EmoLex's association flags)
        if valence:
            if not builder.add(term, VALENCE, weight, line):
                continue
            if weight > 0:
                builder.add(term, "positive", 1.0, line)
            elif weight < 0:
                builder.add(term, "negative", 1.0, line)
        else:
            assert category_i is not None
            builder.add(term, row[category_i].strip(), weight, line)
    weighted = {VALENCE} if valence else ({c for c in builder.categories} if weight_i is not None else set())
    return builder.build(path.stem, weighted)


def read_lexicon(
    path: str | Path,
    *,
    format: str = "auto",
    prefix_match: bool = False,
    columns: Mapping[str, str] | None = None,
    encoding: str = "utf-8",
) -> Lexicon:
    """Read a lexicon file in any supported format (chosen by suffix unless ``format`` is given)."""
    path = Path(path)
    if not path.is_file():
        raise LexiconError(path, "lexicon file not found")
    fmt = format
    if fmt == "auto":
        suffix = path.suffix.lower()
        fmt = {
            ".dic": "dic",
            ".yml": "yaml",
            ".yaml": "yaml",
            ".csv": "csv",
            ".tsv": "tsv",
            ".txt": "tsv",
        }.get(suffix, "")
        if not fmt:
            raise LexiconError(
                path, f"cannot tell the format from {suffix!r}; set format: dic, yaml, csv or tsv"
            )
    if fmt == "dic":
        lexicon = read_dic(path, prefix_match, encoding)
    elif fmt == "yaml":
        lexicon = read_yaml(path, prefix_match, encoding)
    elif fmt in ("csv", "tsv"):
        lexicon = read_table(path, prefix_match, "," if fmt == "csv" else "\t", columns, encoding)
    else:
        raise LexiconError(path, f"unknown lexicon format {fmt!r}")
    if not lexicon.entries:
        raise LexiconError(path, "the lexicon has no usable entries")
    lexicon.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    return lexicon


def write_lexicon_csv(lexicon: Lexicon, path: str | Path) -> None:
    """Write ``term,category,weight`` rows, largest weights first per category, as ``read_lexicon`` reads."""
    rows = [(entry.text, category, weight) for entry in lexicon.entries for category, weight in entry.weights]
    rows.sort(key=lambda r: (lexicon.categories.index(r[1]), -abs(r[2]), r[0]))
    with Path(path).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["term", "category", "weight"])
        for term, category, weight in rows:
            writer.writerow([term, category, repr(float(weight))])
