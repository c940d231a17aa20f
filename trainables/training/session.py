"""Where a trial reports to and resumes from. The loop sees only this protocol; Ray lives in tune_adapter.py."""

from __future__ import annotations

import os
from typing import Any, Protocol

import torch

STATE_FILE = "state.pt"


class Session(Protocol):
    def restore(self) -> dict[str, Any] | None:
        """The state saved by the last `report` that carried one, or None for a fresh start."""

    def report(self, metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        """Publish metrics; when `state` is given, checkpoint it so the trial can resume from here."""


def save_state(state: dict[str, Any], folder: str, name: str = STATE_FILE) -> None:
    tmp = os.path.join(folder, f".{name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, os.path.join(folder, name))


def load_state(folder: str, name: str = STATE_FILE) -> dict[str, Any]:
    # weights_only: a checkpoint never runs code when loaded
    return torch.load(os.path.join(folder, name), map_location="cpu", weights_only=True)


class LocalSession:
    """No Ray: checkpoints in a folder, metrics to a callback (the debug mode and tests)."""

    def __init__(self, folder: str, on_report=None):
        self.folder, self.on_report = folder, on_report
        os.makedirs(folder, exist_ok=True)

    def restore(self) -> dict[str, Any] | None:
        return load_state(self.folder) if os.path.exists(os.path.join(self.folder, STATE_FILE)) else None

    def report(self, metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        if state is not None:
            save_state(state, self.folder)
        if self.on_report:
            self.on_report(metrics)
