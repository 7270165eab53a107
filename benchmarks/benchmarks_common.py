"""What every benchmark records beside its figures: the machine, and results as JSON and Markdown."""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, GPU (if torch sees one), platform and library versions."""
    cpu = "unknown"
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    # Machines that report the same model name differ in what matters here: native bf16 doubles an
    # encoder's CPU throughput, and its figures mean nothing beside those of a machine without it.
    vector = [name for flag, name in (("avx512_bf16", "AVX-512 BF16"), ("amx_bf16", "AMX")) if flag in flags]
    if not vector and "avx512f" in flags:
        vector = ["AVX-512"]
    elif not vector and "avx2" in flags:
        vector = ["AVX2"]
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    versions = {}
    for name in ("numpy", "numba", "polars", "torch", "transformers", "peft", "deepspeed", "ray"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {
        "cpu": cpu,
        "cpu_features": vector,
        "cores": os.cpu_count(),
        "memory_gib": round(memory / 2**30, 1),
        "gpu": gpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def describe(info: dict[str, Any]) -> str:
    gpu = f", GPU {info['gpu']}" if info.get("gpu") else ", no GPU"
    features = f" ({', '.join(info['cpu_features'])})" if info.get("cpu_features") else ""
    return f"{info['cpu']}{features}, {info['cores']} cores, {info['memory_gib']} GiB{gpu}; {info['date']}"


def write_results(name: str, results: dict[str, Any], lines: list[str]) -> None:
    """benchmarks/results/<name>.json and .md, each with the machine they ran on."""
    info = machine()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(
        json.dumps({"benchmark": name, "machine": info, **results}, indent=2) + "\n"
    )
    markdown = [lines[0], "", f"Machine: {describe(info)}.", *lines[1:]]
    (RESULTS / f"{name}.md").write_text("\n".join(markdown) + "\n")
    print("\n".join(markdown))


def with_classifier_head(model_dir: str | Path, labels: int = 2) -> str:
    """``model_dir`` with a classification head drawn at random (seeded), saved beside it once.

    For throughput only: speed does not depend on the head's weights, and the encoder backend
    refuses to code with a head that transformers would draw afresh at every load.
    """
    base = Path(model_dir)
    folder = base.with_name(f"{base.name}-random-head-{labels}")
    if not (folder / "model.safetensors").exists():
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=labels)
        model.save_pretrained(folder)
        AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return str(folder.resolve())
