"""The entry point: registers the dictionary backends through the same hook a stranger's plugin uses."""

from __future__ import annotations

from scalecode import hookimpl
from scalecode.hookspecs import RegisterBackend
from scalecode_dictionary.backends import LearnedDictionaryBackend, LexiconBackend


@hookimpl
def register_backends(register: RegisterBackend) -> None:
    register(LexiconBackend)
    register(LearnedDictionaryBackend)
