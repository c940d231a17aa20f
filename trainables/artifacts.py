"""What a trial keeps for the trials of later stages, addressed by its trial id (issue 7):

<sweep>/artifacts/<trial_id>/
    init.pt         the model's weights at step 0, before any mask (what a lottery ticket rewinds to)
    step-<k>.pt     the weights after step k, for late rewinding (only the steps a later stage asks for)
    masks.pt        the final masks, by prunable tensor name

Plain tensors in dicts, written whole (temporary name, then rename; a single PUT on an object store) and read
with `torch.load(weights_only=True)`. Only rank 0 writes.
"""

from __future__ import annotations

import io
from typing import Any

import torch

from trainables import paths, storage

INIT = "init.pt"
MASKS = "masks.pt"


def weights_file(step: int) -> str:
    return INIT if step == 0 else f"step-{step}.pt"


def location(sweep_dir: str, trial_id: str, name: str) -> str:
    return paths.join(paths.artifacts_dir(sweep_dir), trial_id, name)


def save(sweep_dir: str, trial_id: str, name: str, tensors: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    storage.write_bytes(location(sweep_dir, trial_id, name), buffer.getvalue())


def exists(sweep_dir: str, trial_id: str, name: str) -> bool:
    return storage.exists(location(sweep_dir, trial_id, name))


def load(sweep_dir: str, trial_id: str, name: str) -> dict[str, Any]:
    where = location(sweep_dir, trial_id, name)
    if not storage.exists(where):
        raise FileNotFoundError(f"trial {trial_id} has no artifact {name} (looked for {paths.redact(where)})")
    return torch.load(io.BytesIO(storage.read_bytes(where)), map_location="cpu", weights_only=True)


def weights(model: torch.nn.Module, names: set[str] | None = None) -> dict[str, torch.Tensor]:
    """A copy of the model's state (parameters and buffers), limited to `names` if given: a reparameterising
    method's extra tensors (VD's log sigma^2) are not the architecture's weights."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if names is None or k in names}
