"""Where a model comes from: a local folder, a hub id, or a GGUF file (converted once and cached).

Weights are read from safetensors only: pickled ``.bin`` weights would run code when loaded, so they are
refused. Remote code (a model's own Python files on the hub) runs only with ``trust_remote_code: true``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from scalecode_hf.devices import cache_dir

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class ModelSource:
    """A resolved ``model:`` option."""

    kind: Literal["folder", "hub", "gguf"]
    location: str
    revision: str | None = None
    trust_remote_code: bool = False

    def pretrained(self) -> tuple[str, dict[str, Any]]:
        """What to hand to ``from_pretrained``: a folder or hub id, and the keyword arguments."""
        kwargs: dict[str, Any] = {"trust_remote_code": self.trust_remote_code}
        if self.kind == "gguf":
            return str(gguf_folder(Path(self.location))), kwargs
        if self.kind == "hub" and self.revision:
            kwargs["revision"] = self.revision
        return self.location, kwargs


def resolve(model: str, *, revision: str | None = None, trust_remote_code: bool = False) -> ModelSource:
    """Decide what ``model:`` names; ValueError says what is wrong with it."""
    path = Path(model).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ValueError(f"model: GGUF file {model} does not exist")
        return ModelSource("gguf", str(path.resolve()), None, trust_remote_code)
    if path.exists():
        if not (path / "config.json").is_file():
            raise ValueError(f"model: {model} is not a model folder (no config.json)")
        return ModelSource("folder", str(path.resolve()), None, trust_remote_code)
    if model.startswith((".", "/", "~")) or not _HUB_ID.match(model):
        raise ValueError(
            f"model: {model} is neither a model folder, a .gguf file nor a hub id such as org/name"
        )
    return ModelSource("hub", model, revision, trust_remote_code)


def _sha256(path: Path) -> str:
    stat = path.stat()
    return _sha256_of(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    """Hashed once per process and version of a file: a run asks for a model's hashes several times
    (its identity, the manifest, the checkpoints' claim), and weights can be gigabytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(source: ModelSource) -> dict[str, str]:
    """sha256 of the weight files (a folder or GGUF), or the hub id and revision."""
    if source.kind == "hub":
        return {"model": f"{source.location}@{source.revision or 'unpinned'}"}
    path = Path(source.location)
    files = [path] if path.is_file() else sorted(path.glob("*.safetensors"))
    return {str(f): _sha256(f) for f in files}


def content_identity(source: ModelSource) -> dict[str, Any]:
    """The model as what it is, not where it sits: the hashes of its weights (and of a folder's
    config.json, which shapes the model too), or the hub id and revision. Moving a project to another
    directory leaves it unchanged."""
    content = sorted(fingerprint(source).values())
    config = Path(source.location) / "config.json"
    if source.kind == "folder" and config.is_file():
        content.append(_sha256(config))
    return {"kind": source.kind, "content": content, "trust_remote_code": source.trust_remote_code}


def gguf_folder(path: Path) -> Path:
    """The GGUF model dequantised to a safetensors folder, converted once and kept in the cache.

    Converting takes seconds to minutes; reloading the folder takes a fraction of a second. Several
    processes may race to convert: each writes to its own temporary folder and the first rename wins.
    """
    target = cache_dir() / "models" / f"{path.stem}-{_sha256(path)[:16]}"
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    scratch = target.with_name(f".{target.name}.{os.getpid()}")
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    # The dequantised weights are plain float tensors; drop the quantisation record so they save as such.
    setattr(model, "hf_quantizer", None)  # noqa: B010 - transformers declares it read-only
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(scratch, safe_serialization=True)
    tokenizer.save_pretrained(scratch)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(scratch, target)
    except OSError:  # another process finished first; its folder is as good as ours
        shutil.rmtree(scratch, ignore_errors=True)
    return target
