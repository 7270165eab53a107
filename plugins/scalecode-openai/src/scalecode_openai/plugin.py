"""The entry point: registers the `openai` backend through the same hook any plugin uses.

Registration imports neither `openai` nor the network: the backend module imports the client inside
``load()``.
"""

from __future__ import annotations

from scalecode import hookimpl
from scalecode.hookspecs import RegisterBackend


@hookimpl
def register_backends(register: RegisterBackend) -> None:
    from scalecode_openai.backend import OpenAIBackend

    register(OpenAIBackend)
