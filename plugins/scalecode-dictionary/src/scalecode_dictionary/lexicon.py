"""Lexicons in the formats researchers already have, read into one model.

Formats:

- LIWC-style ``.dic``: a header of ``number<TAB>category`` lines between ``%`` lines, then one entry per
  line with its category numbers. LIWC2007's conditional codes (``(02 134)126/125``) are ignored,
  with a warning.
- quanteda-style YAML: ``category: [terms]``, nested mappings giving ``parent.child`` categories; a
  top-level ``Dictionary:`` key (as cntext ships them) is unwrapped; ``category: {term: weight}``
  gives weights. Repeated keys, aliases (``*name``) and list items that are not terms are refused.
- CSV/TSV: ``term, weight`` (a valence lexicon), ``term, category`` or ``term, category, weight``, with
  or without a header; ``.txt`` files are read as headerless TSV (VADER's and AFINN's layout). An
  empty weight in ``term, category, weight`` makes that row a count; a 0 leaves the term out of a
  category whose weights are all 0 or 1 (NRC EmoLex's association flags) and is a weight elsewhere.

A weight must be a finite number (NaN and infinities are refused, naming the file, line and term).

Entries are tokenised with the text's own rule (tokenize.py), so ``can't stand`` and ``well-known``
become two-token phrases and match the text exactly as written (Persian ``می‌خواهم``, written with its
ZERO WIDTH NON-JOINER, is one token). A trailing ``*`` makes the last token a prefix (``abandon*``
matches ``abandon``, ``abandoned``, ``abandonment``; a joiner before the ``*`` stays in the prefix).
An entry that is not made of words (VADER's emoticons such as ``:D`` or ``<3``) is skipped and counted
in the warnings. A valence lexicon (one weight per term, no categories) gets a weighted category
``valence`` and count categories ``positive`` and ``negative`` by the sign of the weight.

Files are UTF-8 unless an ``encoding`` is given (LIWC ``.dic`` files are often Latin-1).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scalecode_dictionary.tokenize import IGNORABLES, JOINERS, ends_with_word, prefix_tokens, tokenize

VALENCE = "valence"
POSITIVE_NAMES = ("positive", "pos", "posemo", "neg_negative")
NEGATIVE_NAMES = ("negative", "neg", "negemo", "neg_positive")
TERM_COLUMNS = ("term", "word", "token", "entry", "pattern", "words", "terms")
WEIGHT_COLUMNS = ("weight", "score", "value", "valence", "polarity", "sentiment", "mean")
CATEGORY_COLUMNS = ("category", "cat", "categories", "class", "dimension", "label", "key")
COLUMN_ROLES = ("term", "weight", "category")
MAX_PHRASE_TOKENS = 8
INSIDE = frozenset((*JOINERS, *IGNORABLES))  # invisible characters a term may hold
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

    def add(
        self, term: str, category: str, weight: float, line: int | None, written: str | None = None
    ) -> bool:
        """Add one (term, category, weight); False when skipped (not a word) or a repeat.

        ``written`` is the weight as the file writes it, for the error a non-finite weight raises.
        """
        raw = unicodedata.normalize("NFC", term.strip())
        if not math.isfinite(weight):
            shown = repr(written) if written is not None else str(weight)
            raise LexiconError(self.path, f"weight {shown} of {raw!r} is not a finite number", line)
        if not raw:
            return False
        # A '*' right after a word is a wildcard; a '*' between word characters is a glob we do not
        # support; any other '*' is punctuation (VADER's emoticons such as "*\\0/*").
        trailing = raw.endswith("*") and len(raw) > 1 and ends_with_word(raw[:-1])
        body = raw[:-1] if trailing else raw
        if re.search(r"\w\*+\w", body):
            raise LexiconError(self.path, f"entry {raw!r}: only a trailing '*' wildcard is supported", line)
        if not is_word_term(body):
            self.not_words.append(raw)
            return False
        wildcard = trailing or self.prefix_match
        # A joiner before the '*' stays in the prefix ('می‌*': the ZWNJ is between word characters).
        tokens = tuple(prefix_tokens(body) if wildcard and ends_with_word(body) else tokenize(body))
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
    # Combining marks (Devanagari and Thai vowel signs, Arabic harakat, a decomposed é), joiners
    # (Persian ZWNJ) and soft hyphens are parts of words, but Python's \w does not match them.
    letters = "".join(c for c in term if not unicodedata.category(c).startswith("M") and ord(c) not in INSIDE)
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
    conditional: list[tuple[str, int]] = []  # (code, line)
    for i in range(markers[1] + 1, len(lines)):
        line = lines[i].strip()
        if not line:
            continue
        if "\t" in line:
            term, _, rest = line.partition("\t")
            rest, groups = _conditional_groups(rest)
            codes = rest.split()
        else:
            line, groups = _conditional_groups(line)
            parts = line.split()
            cut = len(parts)
            while cut > 1 and DIC_CODE.fullmatch(parts[cut - 1]):
                cut -= 1
            term, codes = " ".join(parts[:cut]), parts[cut:]
        conditional.extend((group, i + 1) for group in groups)
        for code in codes:
            if not code.isdigit():
                conditional.append((code, i + 1))  # a bare conditional code such as 134/125
                continue
            if int(code) not in names:
                raise LexiconError(
                    path, f"entry {term!r} uses category {code}, not declared in the header", i + 1
                )
            builder.add(term, names[int(code)], 1.0, i + 1)
    lexicon = builder.build(path.stem)
    if conditional:
        code, line_number = conditional[0]
        lexicon.warnings.append(
            f"{len(conditional)} conditional category codes (LIWC2007 style, such as {code!r} on line "
            f"{line_number}) were ignored: an entry keeps only its plain category numbers"
        )
    return lexicon


# LIWC2007's conditional codes: '(02 134)126/125' (126 when the word before is in category 02 or
# 134, else 125), '(02 134)126', and bare '134/125'. Any piece with a parenthesis or a slash is a code.
DIC_CONDITIONAL_GROUP = re.compile(r"\([^()]*\)[\d/]*")
DIC_CODE = re.compile(r"\d+|.*[()/].*")


def _conditional_groups(text: str) -> tuple[str, list[str]]:
    """The text without its parenthesised conditional codes, and those codes."""
    groups = [m.group(0) for m in DIC_CONDITIONAL_GROUP.finditer(text)]
    return DIC_CONDITIONAL_GROUP.sub(" ", text), groups


# Tags YAML gives plain scalars by their look: 'no' is a bool, '~' null, '3.10' the float 3.1.
IMPLICIT_TAGS = frozenset(
    f"tag:yaml.org,2002:{kind}" for kind in ("bool", "null", "int", "float", "timestamp")
)
NULL_TAG = "tag:yaml.org,2002:null"


class _Refused(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class _TermLoader(yaml.SafeLoader):
    """A safe YAML loader (it constructs no Python objects) that refuses aliases as it reads them.

    An alias (``*name``) repeats what its anchor holds; nested aliases expand exponentially ("billion
    laughs": a few hundred bytes become billions of terms), so a lexicon may not use them.
    """

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise _Refused(
                f"YAML aliases (*{event.anchor}) are not supported in a lexicon; write the terms out",
                event.start_mark.line + 1,
            )
        node = super().compose_node(parent, index)
        assert node is not None
        return node


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


class _YamlReader:
    """Walks the composed YAML nodes, so every term keeps the line it is written on."""

    def __init__(self, loader: _TermLoader, text: str) -> None:
        self.loader = loader
        self.text = text
        self.rows: list[tuple[str, str, float, int, str | None]] = []  # term, category, weight, line
        self.weighted: list[str] = []

    def term(self, node: yaml.ScalarNode) -> str:
        """A term or category name as written: ``no``, ``off``, ``~`` and ``010`` stay strings."""
        if node.style is None and node.tag in IMPLICIT_TAGS:
            return str(node.value)
        return str(self.loader.construct_object(node))

    def source(self, node: yaml.Node) -> str:
        written = " ".join(self.text[node.start_mark.index : node.end_mark.index].split())
        return written if len(written) <= 60 else written[:57] + "..."

    def keys(self, node: yaml.MappingNode, prefix: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """The mapping's (name, key, value), refusing keys that are not terms or that repeat."""
        seen: dict[str, int] = {}
        out: list[tuple[str, yaml.Node, yaml.Node]] = []
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise _Refused(f"{_where(prefix)}key {self.source(key)} is not a term", _line(key))
            name = self.term(key)
            if name in seen:
                raise _Refused(
                    f"{_where(prefix)}key {name!r} repeats the key on line {seen[name]}; YAML keeps only "
                    "the last of repeated keys, so merge them",
                    _line(key),
                )
            seen[name] = _line(key)
            out.append((name, key, value))
        return out

    def weight(self, node: yaml.Node) -> float | None:
        """The number a mapping value holds, or None when it is not a number."""
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (
            "tag:yaml.org,2002:int",
            "tag:yaml.org,2002:float",
        ):
            return None
        value = self.loader.construct_object(node)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        try:
            return float(value)
        except OverflowError:  # an integer too large for a float
            return math.inf if value > 0 else -math.inf

    def category(self, node: yaml.Node, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            items = self.keys(node, prefix)
            weights = [self.weight(value) for _, _, value in items]
            if prefix and items and all(w is not None for w in weights):
                self.weighted.append(prefix)  # category: {term: weight}
                for (name, _, value), w in zip(items, weights, strict=True):
                    assert w is not None
                    self.rows.append((name, prefix, w, _line(value), str(value.value)))
                return
            for name, _, value in items:
                self.category(value, f"{prefix}.{name}" if prefix else name)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                if not isinstance(item, yaml.ScalarNode):
                    raise _Refused(
                        f"{_where(prefix)}list item {self.source(item)} is not a term", _line(item)
                    )
                self.rows.append((self.term(item), prefix, 1.0, _line(item), None))
        elif not (isinstance(node, yaml.ScalarNode) and node.tag == NULL_TAG):
            kind = type(self.loader.construct_object(node)).__name__
            raise _Refused(
                f"category {prefix!r}: expected a list of terms or a mapping, got {kind}", _line(node)
            )


def _where(prefix: str) -> str:
    return f"category {prefix!r}: " if prefix else ""


def read_yaml(path: Path, prefix_match: bool = False, encoding: str = "utf-8") -> Lexicon:
    """A quanteda-style YAML dictionary (or cntext's, with a top-level ``Dictionary:``).

    Terms (list items and the keys of ``{term: weight}`` mappings) are read as the strings written.
    Aliases, repeated keys and list items that are not terms are refused, naming their line.
    """
    text = read_text(path, encoding)
    loader = _TermLoader(text)
    try:
        root = loader.get_single_node()
        reader = _YamlReader(loader, text)
        if isinstance(root, yaml.MappingNode):
            top = reader.keys(root, "")
            root = next((value for name, _, value in top if name == "Dictionary"), root)
        if not isinstance(root, yaml.MappingNode):
            raise _Refused("a YAML lexicon maps category names to lists of terms", None)
        reader.category(root, "")
    except _Refused as exc:
        raise LexiconError(path, exc.message, exc.line) from None
    except yaml.YAMLError as exc:
        raise LexiconError(path, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    builder = _Builder(path, prefix_match)
    for term, category, weight, line, written in reader.rows:
        builder.add(term, category, weight, line, written)
    return builder.build(path.stem, reader.weighted)


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
    # line, term, category, weight (None: a count), the weight as written
    categorised: list[tuple[int, str, str, float | None, str]] = []
    for line, row in numbered:
        if len(row) <= max(i for i in (term_i, weight_i, category_i) if i is not None):
            raise LexiconError(path, f"row {row!r} has too few columns", line)
        term = row[term_i]
        written = row[weight_i].strip() if weight_i is not None else ""
        weight: float | None = None  # None: a count, in a category without weights
        # An empty weight in a term, category, weight table is a count (write_lexicon_csv writes them).
        if weight_i is not None and (category_i is None or written):
            weight = _number(written)
            if weight is None:
                raise LexiconError(path, f"weight {row[weight_i]!r} of {term!r} is not a number", line)
        if category_i is None:
            assert weight is not None
            if not builder.add(term, VALENCE, weight, line, written):
                continue
            if weight > 0:
                builder.add(term, "positive", 1.0, line)
            elif weight < 0:
                builder.add(term, "negative", 1.0, line)
        else:
            categorised.append((line, term, row[category_i].strip(), weight, written))
    if category_i is None:
        return builder.build(path.stem, {VALENCE})
    # NRC EmoLex lists every term under every category, 1 where it belongs and 0 where not: in a category
    # whose weights are all 0 or 1, a 0 leaves the term out. In any other category 0 is a weight.
    flags: dict[str, bool] = {}
    for _, _, category, value, _ in categorised:
        if value is not None:
            flags[category] = flags.get(category, True) and value in (0.0, 1.0)
    for number, name, category, value, as_written in categorised:
        if value is not None and value == 0 and flags[category]:
            continue
        builder.add(name, category, 1.0 if value is None else value, number, as_written)
    return builder.build(path.stem, {c for c in builder.categories if c in flags})


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
        why = f" ({'; '.join(lexicon.warnings)})" if lexicon.warnings else ""
        raise LexiconError(path, f"the lexicon has no usable entries{why}")
    lexicon.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    return lexicon


def _is_valence_lexicon(lexicon: Lexicon) -> bool:
    """Whether the lexicon is what read_lexicon makes of a term, weight table (VADER, AFINN)."""
    if (
        lexicon.weighted != {VALENCE}
        or lexicon.categories[:1] != [VALENCE]
        or not set(lexicon.categories) <= {VALENCE, "positive", "negative"}
    ):
        return False
    for entry in lexicon.entries:
        weights = dict(entry.weights)
        if VALENCE not in weights or len(weights) != len(entry.weights):
            return False
        weight = weights.pop(VALENCE)
        if weights != ({"positive": 1.0} if weight > 0 else {"negative": 1.0} if weight < 0 else {}):
            return False
    return True


def write_lexicon_csv(lexicon: Lexicon, path: str | Path) -> None:
    """Write a CSV that ``read_lexicon`` reads back as the same lexicon, giving the same scores.

    A valence lexicon (a weighted ``valence`` with the count categories ``positive`` and ``negative``
    by the sign of each weight, as read from VADER or AFINN) is written as ``term,weight`` rows, zero
    weights included. Any other is written as ``term,category,weight`` rows, the weight left empty in
    categories without weights (counts), or ``term,category`` when no category has weights. Rows go
    category by category, largest weights first.

    Read back, entries, weights, categories (and their order), the weighted categories and the polar
    ones are the same, except that a category without entries is not written, polar categories are
    recognised by their names again, and in a weighted category whose weights are all 0 or 1 a 0
    reads back as "not in this category" (NRC EmoLex's association flags), so such entries are lost.
    """
    if _is_valence_lexicon(lexicon):
        order = {name: i for i, name in enumerate(lexicon.categories)}

        def valence_key(row: tuple[str, float]) -> tuple[int, float, str]:
            term, weight = row
            side = "positive" if weight > 0 else "negative" if weight < 0 else None
            return (order[side] if side in order else len(order)), -abs(weight), term

        valence = sorted(((e.text, dict(e.weights)[VALENCE]) for e in lexicon.entries), key=valence_key)
        header = ["term", "weight"]
        rows = [[term, repr(float(weight))] for term, weight in valence]
    else:
        triples = [(e.text, category, weight) for e in lexicon.entries for category, weight in e.weights]
        triples.sort(key=lambda r: (lexicon.categories.index(r[1]), -abs(r[2]), r[0]))
        if lexicon.weighted & set(lexicon.categories):
            header = ["term", "category", "weight"]
            rows = [
                [term, category, repr(float(weight)) if category in lexicon.weighted else ""]
                for term, category, weight in triples
            ]
        else:
            header = ["term", "category"]
            rows = [[term, category] for term, category, _ in triples]
    with Path(path).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
