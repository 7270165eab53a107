"""The entry point: registers the open-model backends through the same hook any plugin uses.

Registration imports no model library: the backends' modules import torch and transformers, which is
why they are imported inside the hook rather than at the top of this module.
"""

from __future__ import annotations

from scalecode import hookimpl
from scalecode.hookspecs import RegisterBackend


@hookimpl
def register_backends(register: RegisterBackend) -> None:
    from scalecode_hf.causal import CausalLMBackend
    from scalecode_hf.encoder import EncoderBackend

    register(EncoderBackend)
    register(CausalLMBackend)
