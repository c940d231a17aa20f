"""What a trial keeps for the trials of later stages, addressed by its trial id (issue 7):

<sweep>/artifacts/<trial_id>/
    init.json       the model's weights at step 0, before any mask (what a lottery ticket rewinds to)
    step-<k>.json   the weights after step k, for late rewinding (only the steps a later stage asks for)
    masks.pt        the final masks, by prunable tensor name
<sweep>/artifacts/weights/<sha256>.pt   the weights themselves, stored once per content

Most trials of a sweep start from the same weights (one initialisation per seed and model), so a trial's weight
files are pointers ({"sha256": ...}) to content-addressed files: a 324-trial ResNet-50 grid keeps one copy of
its 100 MB initialisation per seed, not 324. Plain tensors in dicts, written whole (temporary name, then
rename; a single PUT on an object store), read with `torch.load(weights_only=True)` after checking the hash.
Only rank 0 writes.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import torch

from trainables.records import paths, storage

MASKS = "masks.pt"


def weights_file(step: int) -> str:
    """The pointer file of a trial's weights after `step` (0: its initial weights)."""
    return "init.json" if step == 0 else f"step-{step}.json"


INIT = weights_file(0)


def location(sweep_dir: str, trial_id: str, name: str) -> str:
    return paths.join(paths.artifacts_dir(sweep_dir), trial_id, name)


def _serialize(tensors: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(tensors, buffer)  # the same tensors give the same bytes (checked), so equal weights share a file
    return buffer.getvalue()


def _deserialize(data: bytes) -> dict[str, Any]:
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def save(sweep_dir: str, trial_id: str, name: str, tensors: dict[str, Any]) -> None:
    """Masks (or any tensors) as `<trial_id>/<name>`."""
    storage.write_bytes(location(sweep_dir, trial_id, name), _serialize(tensors))


def _blob(sweep_dir: str, digest: str) -> str:
    return paths.join(paths.artifacts_dir(sweep_dir), "weights", f"{digest}.pt")


def save_weights(sweep_dir: str, trial_id: str, step: int, tensors: dict[str, Any]) -> None:
    """The trial's weights after `step`: the content once under weights/, the trial's pointer to it."""
    data = _serialize(tensors)
    digest = hashlib.sha256(data).hexdigest()
    blob = _blob(sweep_dir, digest)
    if not storage.exists(blob):
        storage.write_bytes(blob, data)
    storage.write_text(location(sweep_dir, trial_id, weights_file(step)), json.dumps({"sha256": digest}))


def load_weights(sweep_dir: str, trial_id: str, step: int) -> dict[str, Any]:
    """What `save_weights` stored for this trial and step; ValueError if the content does not match its hash."""
    digest = json.loads(storage.read_text(_existing(sweep_dir, trial_id, weights_file(step))))["sha256"]
    blob = _blob(sweep_dir, digest)
    data = storage.read_bytes(_existing(sweep_dir, trial_id, weights_file(step), blob))
    if hashlib.sha256(data).hexdigest() != digest:
        raise ValueError(f"{paths.redact(blob)} is corrupt: its content does not match its sha256 name")
    return _deserialize(data)


def exists(sweep_dir: str, trial_id: str, name: str) -> bool:
    return storage.exists(location(sweep_dir, trial_id, name))


def load(sweep_dir: str, trial_id: str, name: str) -> dict[str, Any]:
    return _deserialize(storage.read_bytes(_existing(sweep_dir, trial_id, name)))


def _existing(sweep_dir: str, trial_id: str, name: str, where: str | None = None) -> str:
    where = where or location(sweep_dir, trial_id, name)
    if not storage.exists(where):
        raise FileNotFoundError(f"trial {trial_id} has no artifact {name} (looked for {paths.redact(where)})")
    return where


def weights(model: torch.nn.Module, names: set[str] | None = None) -> dict[str, torch.Tensor]:
    """A copy of the model's state (parameters and buffers), limited to `names` if given: a reparameterising
    method's extra tensors (VD's log sigma^2) are not the architecture's weights."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if names is None or k in names}
