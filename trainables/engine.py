"""How one optimizer step is taken: plain torch, or DeepSpeed. The only place that calls DeepSpeed.

The loop hands an engine the micro-batch losses of one optimizer step; the engine runs backward on each and
steps the optimizer once, at the end (gradient accumulation). Both engines save and load their state as plain
tensors and Python values, so checkpoints load with `weights_only=True`.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from typing import Any

import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    kind: str = "torch"  # "torch" | "deepspeed"
    zero_stage: int = 0
    micro_batches: int = 1  # gradient accumulation steps per optimizer step


class TorchEngine:
    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, micro_batches: int = 1):
        self.module, self.optimizer, self.micro_batches = model, optimizer, micro_batches

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def backward(self, loss: torch.Tensor) -> None:
        (loss / self.micro_batches).backward()

    def step(self) -> None:
        """Called once per optimizer step, after all its micro-batches."""
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

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
            _single_process_env()
            deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
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
        super().__init__(engine.module, ds_optimizer, micro_batches)
        self.engine = engine

    def __call__(self, *args, **kwargs):
        return self.engine(*args, **kwargs)

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss)  # DeepSpeed divides by the accumulation steps itself
        if not self.engine.is_gradient_accumulation_boundary():
            self.engine.step()  # only advances DeepSpeed's micro-step counter

    def step(self) -> None:
        self.engine.step()

    def set_lr(self, lr: float) -> None:
        for group in self.engine.optimizer.param_groups:
            group["lr"] = lr

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.module.state_dict(), "optimizer": self.engine.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["model"])
        self.engine.optimizer.load_state_dict(state["optimizer"])


def _single_process_env() -> None:
    """A one-process 'cluster' for DeepSpeed outside a launcher (the debug mode, a single-worker trial)."""
    if "MASTER_PORT" not in os.environ:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))


def build(config: EngineConfig, model: nn.Module, optimizer: torch.optim.Optimizer, micro_batch_size: int):
    if config.kind == "deepspeed":
        return DeepSpeedEngine(model, optimizer, config.micro_batches, config.zero_stage, micro_batch_size)
    return TorchEngine(model, optimizer, config.micro_batches)
