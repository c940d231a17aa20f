"""How one optimizer step is taken: plain torch, or DeepSpeed. The only place that calls DeepSpeed.

The loop hands an engine the micro-batch losses of one optimizer step; the engine runs backward on each and
steps the optimizer once, at the end (gradient accumulation). Both engines save and load their state as plain
tensors and Python values, so checkpoints load with `weights_only=True`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    kind: str = "torch"  # "torch" | "deepspeed"
    zero_stage: int = 0
    micro_batches: int = 1  # gradient accumulation steps per optimizer step


class TorchEngine:
    """Plain torch; data-parallel through DistributedDataParallel when a process group of several ranks exists."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, micro_batches: int = 1):
        self.module, self.optimizer, self.micro_batches = model, optimizer, micro_batches
        import torch.distributed as dist

        self.forward = model
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            device_ids = [model_device] if (model_device := next(model.parameters()).device).type == "cuda" else None
            self.forward = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def backward(self, loss: torch.Tensor) -> None:
        (loss / self.micro_batches).backward()

    def step(self) -> None:
        """Called once per optimizer step, after all its micro-batches."""
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def skip_step(self) -> None:
        """An optimizer step the sparsifier skips (RigL's mask updates): its gradients are dropped."""
        self.optimizer.zero_grad(set_to_none=True)

    def reset_optimizer(self) -> None:
        """A fresh optimizer (IMP's rounds): momentum and every other state dropped, hyper-parameters kept."""
        self.optimizer.state.clear()

    @torch.no_grad()
    def mask_momentum(self, masked: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Zero the momentum of every pruned weight, (parameter, mask) pairs (after RigL's mask updates)."""
        for param, mask in masked:
            buffer = self.optimizer.state.get(param, {}).get("momentum_buffer")
            if buffer is not None:
                buffer.mul_(mask)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.module.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])


class DeepSpeedEngine(TorchEngine):
    """`deepspeed.initialize` around the task's model and optimizer; ZeRO stages 0-2.

    Stage 3 partitions the parameters themselves, so a sparsifier would see shards; it is refused.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        micro_batches: int = 1,
        zero_stage: int = 0,
        micro_batch_size: int = 1,
    ):
        if zero_stage not in (0, 1, 2):
            raise ValueError(
                f"ZeRO stage {zero_stage} is not supported: sparsifiers need whole parameters on every "
                "rank (stages 0, 1, 2)"
            )
        import deepspeed
        import torch.distributed as dist

        if not dist.is_initialized():
            _single_process_group()
        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")  # wraps the group
        world = dist.get_world_size()
        config = {
            "train_micro_batch_size_per_gpu": micro_batch_size,
            "gradient_accumulation_steps": micro_batches,
            "train_batch_size": micro_batch_size * micro_batches * world,
            "zero_optimization": {"stage": zero_stage},
            "zero_allow_untested_optimizer": True,
            "gradient_clipping": 0.0,  # DeepSpeed 0.19 clips at norm 1.0 unless told not to (measured)
            "bf16": {"enabled": torch.cuda.is_available() and torch.cuda.is_bf16_supported()},
            "steps_per_print": 10**9,
        }
        engine, ds_optimizer, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
        # not TorchEngine.__init__: that would also wrap the module in DDP; DeepSpeed all-reduces by itself
        self.module, self.optimizer, self.micro_batches = engine.module, ds_optimizer, micro_batches
        self.engine, self.zero_stage = engine, zero_stage

    def __call__(self, *args, **kwargs):
        return self.engine(*args, **kwargs)

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss)  # DeepSpeed divides by the accumulation steps itself
        if not self.engine.is_gradient_accumulation_boundary():
            self.engine.step()  # only advances DeepSpeed's micro-step counter

    def step(self) -> None:
        self.engine.step()

    def skip_step(self) -> None:
        raise RuntimeError("a method that skips optimizer steps runs with engine torch, not deepspeed")

    def reset_optimizer(self) -> None:
        raise RuntimeError("a method that trains in rounds runs with engine torch, not deepspeed")

    def mask_momentum(self, masked) -> None:
        raise RuntimeError("a method that skips optimizer steps runs with engine torch, not deepspeed")

    def state_dict(self) -> dict[str, Any]:
        # ZeRO's optimizer state also holds DeepSpeed objects (zero stage, slice mappings, a static loss scaler):
        # structure fixed by the configuration. Keep only plain data, so checkpoints load with weights_only.
        optimizer = {k: v for k, v in self.engine.optimizer.state_dict().items() if _plain(v)}
        return {"model": self.module.state_dict(), "optimizer": optimizer}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["model"])
        optimizer = self.engine.optimizer
        live = optimizer.state_dict()
        structure = {k: v for k, v in live.items() if k not in state["optimizer"] and not _plain(v)}
        full = {**state["optimizer"], **structure}
        if self.zero_stage:  # ZeRO-1/2 take a list of per-rank states, indexed by data-parallel rank
            import torch.distributed as dist

            full = [full if r == dist.get_rank() else None for r in range(dist.get_world_size())]
        optimizer.load_state_dict(full)


def _plain(value: Any) -> bool:
    """Tensors, numbers, strings and None, in dicts, lists and tuples: what torch.load(weights_only=True) reads."""
    if type(value) is dict:
        return all(type(k) in (str, int) and _plain(v) for k, v in value.items())
    if type(value) in (list, tuple):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, torch.Tensor) or type(value) in (bool, int, float, str)  # no enums


def _single_process_group() -> None:
    """A one-process group for DeepSpeed outside a launcher (the debug mode, a single-worker trial): an
    in-memory store, so no port is bound (a picked free port can be taken before it is used)."""
    import torch.distributed as dist

    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)


def build(config: EngineConfig, model: nn.Module, optimizer: torch.optim.Optimizer, micro_batch_size: int):
    if config.kind == "deepspeed":
        return DeepSpeedEngine(model, optimizer, config.micro_batches, config.zero_stage, micro_batch_size)
    return TorchEngine(model, optimizer, config.micro_batches)
