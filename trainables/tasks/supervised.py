"""In-memory supervised tasks: a recipe (optimizer, per-epoch LR schedule, shuffled minibatches) shared by the
small tasks. Batches and learning rates are pure functions of (seed, step), so resuming needs no loader state."""

from __future__ import annotations

import math

import torch
from torch import nn

from trainables.packing.model import StackedSGD, stack_sequential
from trainables.tasks.base import Task, param_groups
from trainables.tasks.supervised_options import RecipeOptions, SupervisedSpec


class SupervisedTask(SupervisedSpec, Task):
    """Subclasses provide `train_data()` -> (x, y) as a classmethod, the model, the loss and `evaluate`; a
    subclass whose model is a stack of Linear layers (and parameter-free ones) packs: its declaration says
    `packable = True` and it sets `Packed`."""

    Packed: type[PackedSupervised] | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in dir(cls) and cls.packable != (cls.Packed is not None):
            raise TypeError(f"{cls.__qualname__}: a packable task sets Packed, and only a packable one")

    @classmethod
    def packed(cls, members: list[tuple[RecipeOptions, int]], device: torch.device) -> PackedSupervised:
        return cls.Packed(cls, members, device)

    def __init__(self, options: RecipeOptions, seed: int, device: torch.device):
        super().__init__(options, seed, device)
        x, y = self.train_data()
        if len(x) != self.train_size:  # the declared size gives the step count without building the data
            raise RuntimeError(f"task {self.name} declares {self.train_size} training examples, has {len(x)}")
        self.x, self.y = x.to(device), y.to(device)
        self.steps_per_epoch = len(x) // options.batch_size

    @classmethod
    def train_data(cls) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def build_optimizer(self, model: nn.Module, no_decay: list[nn.Parameter] = ()) -> torch.optim.Optimizer:
        o = self.options
        groups = param_groups(model, o.weight_decay, no_decay)
        if o.optimizer == "adam":
            return torch.optim.Adam(groups, lr=o.lr)
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum)

    def learning_rate(self, step: int) -> float:
        """The rate for optimizer step `step` (1-based), stepped per epoch like torch's epoch schedulers."""
        o, epoch = self.options, (step - 1) // self.steps_per_epoch
        if o.lr_schedule == "cosine":
            return o.lr * 0.5 * (1 + math.cos(math.pi * epoch / o.epochs))
        if o.lr_schedule == "multistep":
            milestones = (math.ceil(0.3 * o.epochs), math.ceil(0.6 * o.epochs))
            return o.lr * 0.1 ** sum(epoch >= m for m in milestones)
        return o.lr

    def batch_indices(self, step: int) -> torch.Tensor:
        epoch, index = divmod(step - 1, self.steps_per_epoch)
        order = self._permutation(epoch)
        return order[index * self.options.batch_size : (index + 1) * self.options.batch_size]

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.batch_indices(step)
        return self.x[idx], self.y[idx]

    def _permutation(self, epoch: int) -> torch.Tensor:
        if getattr(self, "_perm_epoch", None) != epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(len(self.x), generator=gen).to(self.device), epoch
        return self._perm


PERMUTED_ROWS = 2**22  # distinct seeds x data points up to which each seed's epoch is kept permuted (48 MB here)


class PackedSupervised:
    """K trials of one supervised task as one stacked computation, each member exactly as it would run alone:
    its own initial weights (its init seed), batch order (its seed), learning-rate schedule, momentum and weight
    decay. `loss` returns one value per member; their sum is what the pack back-propagates, so every gradient a
    member sees is its own. Subclasses give the per-member `loss` and `evaluate`."""

    def __init__(self, task_cls: type[SupervisedTask], members: list[tuple[RecipeOptions, int]], device):
        # per-member recipes on the CPU: their schedules and permutations, without a copy of the data each
        self.members = [task_cls(options, seed, torch.device("cpu")) for options, seed in members]
        first = self.members[0]
        self.options, self.steps_per_epoch, self.device = first.options, first.steps_per_epoch, device
        self.total_steps, self.eval_every = first.total_steps, first.eval_every
        x, y = task_cls.train_data()
        self.x, self.y = x.to(device), y.to(device)
        seeds = list(dict.fromkeys(seed for _, seed in members))  # members mostly share a few seeds
        self._seed_of = [seeds.index(seed) for _, seed in members]
        self._seed_task = [self.members[self._seed_of.index(i)] for i in range(len(seeds))]
        self.momentum = self._vector([o.momentum for o, _ in members])
        self.weight_decay = self._vector([o.weight_decay for o, _ in members])
        self._seed_rows = torch.tensor(self._seed_of, device=device)
        self._lr_epoch, self._perm_epoch, self._data_epoch = None, None, None

    @property
    def stored_init(self) -> bool:
        return self.members[0].stored_init

    def _vector(self, values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32, device=self.device)

    def build_model(self, init_seeds: list[int]) -> nn.Module:
        """The stacked model; member k's weights are those `torch.manual_seed(init_seeds[k])` gives it alone."""
        models = []
        for task, seed in zip(self.members, init_seeds):
            torch.manual_seed(seed)
            models.append(task.build_model())
        return stack_sequential(models).to(self.device)

    def build_optimizer(self, model: nn.Module) -> StackedSGD:
        return StackedSGD(list(model.parameters()), self.momentum, self.weight_decay)

    def learning_rates(self, step: int) -> torch.Tensor:
        """Every member's rate for optimizer step `step`, shape (K,); the schedules change once per epoch."""
        epoch = (step - 1) // self.steps_per_epoch
        if self._lr_epoch != epoch:
            self._lr, self._lr_epoch = self._vector([m.learning_rate(step) for m in self.members]), epoch
        return self._lr

    def learning_rate_values(self, step: int) -> list[float]:
        """The same rates as Python floats (double precision), as an unpacked trial records them."""
        return [m.learning_rate(step) for m in self.members]

    def batch_indices(self, step: int) -> torch.Tensor:
        """(K, batch) indices: row k is what member k's `batch_indices(step)` gives alone."""
        epoch, index = divmod(step - 1, self.steps_per_epoch)
        if self._perm_epoch != epoch:
            perms = torch.stack([t._permutation(epoch) for t in self._seed_task]).to(self.device)
            self._perms_by_seed, self._perm_epoch = perms, epoch
            self._perms = perms[self._seed_rows]
        size = self.options.batch_size
        return self._perms[:, index * size : (index + 1) * size]

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Row k is member k's own batch. With few distinct seeds (a grid's repeats), each seed's epoch is permuted
        once and a step copies contiguous slices: a random-row gather of every member's batch cost about 2 µs
        per member-step at width 3, a fifth of the step (bench/packing.py)."""
        seeds = len(self._seed_task)
        if seeds * len(self.x) > PERMUTED_ROWS:  # many seeds: a per-epoch copy each would not fit
            idx = self.batch_indices(step)
            return self.x[idx], self.y[idx]
        epoch, index = divmod(step - 1, self.steps_per_epoch)
        if self._data_epoch != epoch:
            self.batch_indices(step)  # this epoch's permutations
            perms = self._perms_by_seed
            self._xs, self._ys, self._data_epoch = self.x[perms], self.y[perms], epoch
        size = self.options.batch_size
        rows = slice(index * size, (index + 1) * size)
        return self._xs[:, rows][self._seed_rows], self._ys[:, rows][self._seed_rows]

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        """One loss per member, shape (K,)."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module) -> list[float]:
        """The task's metric for every member."""
        raise NotImplementedError
