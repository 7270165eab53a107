"""Dictionary baselines for scalecode: lexicons, calibrated lexicons and learned dictionaries."""

from scalecode_dictionary.backends import LearnedDictionaryBackend, LexiconBackend
from scalecode_dictionary.compile import Negation
from scalecode_dictionary.lexicon import Entry, Lexicon, LexiconError, read_lexicon, write_lexicon_csv
from scalecode_dictionary.scorer import LexiconScorer, ReferenceScorer, Scores, features
from scalecode_dictionary.tokenize import tokenize

__version__ = "0.1.0"

__all__ = [
    "Entry",
    "LearnedDictionaryBackend",
    "Lexicon",
    "LexiconBackend",
    "LexiconError",
    "LexiconScorer",
    "Negation",
    "ReferenceScorer",
    "Scores",
    "__version__",
    "features",
    "read_lexicon",
    "tokenize",
    "write_lexicon_csv",
]
