"""Checkpoints with provenance, atomic writes, and the promotion gate for `best`.

A checkpoint must say where it came from (config, git revision, kernel PTX hashes, backend,
device, seed) because a policy trained on emulated estimates is not one trained on H100
cycles, and must be written atomically so an interruption never leaves a torn `last.pt`.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agents.policy import PolicyMLP
from chronos.ptx import ptx_sha256

REPO_ROOT = Path(__file__).resolve().parents[1]


def git_revision(root: Path = REPO_ROOT) -> str:
    """`git rev-parse HEAD`, with `-dirty` when the tree has changes; "unknown" outside git."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("-dirty" if dirty else "")


def ptx_hashes(specs: Iterable[Any]) -> dict[str, str]:
    """Kernel id → sha256 of its checked-in PTX."""
    return {s.id: ptx_sha256(s.ptx()) for s in specs}


def provenance(
    *,
    config: dict[str, Any],
    specs: Iterable[Any],
    backend: str,
    device: str,
    seed: int,
) -> dict[str, Any]:
    """What a checkpoint or report needs to be reproduced and compared fairly."""
    return {
        "config": config,
        "git_revision": git_revision(),
        "kernels": ptx_hashes(specs),
        "backend": backend,
        "device": device,
        "seed": seed,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def save(path: str | Path, payload: dict[str, Any]) -> Path:
    """torch.save to a temporary file, then rename: readers never see a partial checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load(path: str | Path) -> dict[str, Any]:
    return torch.load(Path(path), map_location="cpu", weights_only=False)


def policy_payload(policy: PolicyMLP, **extra: Any) -> dict[str, Any]:
    """A checkpoint holding a policy (architecture + weights) and anything else given."""
    return {"arch": policy.arch(), "policy": policy.state_dict(), **extra}


def load_policy(source: str | Path | dict[str, Any]) -> PolicyMLP:
    """Rebuild the policy stored in a checkpoint file or payload."""
    payload = load(source) if isinstance(source, str | Path) else source
    policy = PolicyMLP(**payload["arch"])
    policy.load_state_dict(payload["policy"])
    return policy


@dataclass
class PromotionGate:
    """A checkpoint becomes `best.pt` only if its eval score beats the previous best.

    The best score lives in `best.json` beside `best.pt`, so the gate survives resumes;
    `min_delta` keeps ties and noise-level gains from promoting.
    """

    directory: Path
    min_delta: float = 0.0

    @property
    def best_path(self) -> Path:
        return Path(self.directory) / "best.pt"

    @property
    def record_path(self) -> Path:
        return Path(self.directory) / "best.json"

    def best(self) -> dict[str, Any] | None:
        if not self.record_path.exists():
            return None
        return json.loads(self.record_path.read_text())

    def consider(self, checkpoint: str | Path, score: float, epoch: int) -> bool:
        """Promote `checkpoint` when `score` (higher is better) beats the best so far."""
        prev = self.best()
        if prev is not None and not score > prev["score"] + self.min_delta:
            return False
        self.best_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.best_path.with_suffix(".pt.tmp")
        shutil.copyfile(checkpoint, tmp)
        os.replace(tmp, self.best_path)
        record = {"score": score, "epoch": epoch, "source": str(checkpoint)}
        self.record_path.write_text(json.dumps(record, indent=2))
        return True
