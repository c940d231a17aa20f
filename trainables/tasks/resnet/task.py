"""ResNet-50 on ImageNet with the State of Sparsity's recipe (papers/state-of-sparsity.md §2.2).

Batch 1024, 128k steps, lr 0.1 per 256 images with a 5-epoch linear warmup and x0.1 at epochs 30, 60 and 80,
Nesterov momentum 0.9, weight decay 1e-4 on conv and FC kernels only (not on batch norm or biases), label
smoothing 0.1. All of it is configurable. On a GPU: channels-last and bf16 autocast. `data_dir: synthetic`
trains on random tensors (throughput measurement; no disk, no JPEG decoding).
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn

from trainables.tasks import register
from trainables.tasks.base import Task, param_groups, world
from trainables.tasks.resnet import imagenet
from trainables.tasks.resnet.model import ResNet50
from trainables.tasks.resnet.options import ResNetOptions, ResNetSpec


@register
class ResNet50ImageNet(ResNetSpec, Task):
    def __init__(self, options: ResNetOptions, seed: int, device: torch.device):
        super().__init__(options, seed, device)
        self.rank, self.world = world()
        if options.batch_size % self.world:
            raise ValueError(f"batch_size {options.batch_size} does not split over {self.world} workers")
        self.local_batch = options.batch_size // self.world
        if options.data_dir == "synthetic":
            self.train_set = imagenet.SyntheticImages(
                options.synthetic_images, options.synthetic_classes, options.image_size, seed
            )
            self.val_set = imagenet.SyntheticImages(
                min(imagenet.VAL_IMAGES, options.synthetic_images), options.synthetic_classes, options.image_size, 1
            )
            self.num_classes = options.synthetic_classes
        else:
            self.train_set = imagenet.ImageFolder(options.data_dir, "train")  # scanned once
            self.val_set = options.data_dir
            self.num_classes = len(self.train_set.classes)
        self.steps_per_epoch = len(self.train_set) // options.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"{len(self.train_set)} training images make no batch of {options.batch_size}")
        self._iterator, self._next = None, None
        self.cuda = device.type == "cuda"

    @property
    def micro_batches(self) -> int:
        micro = self.options.micro_batch_size or self.local_batch
        if self.local_batch % micro:
            raise ValueError(f"micro_batch_size {micro} does not divide the per-worker batch {self.local_batch}")
        return self.local_batch // micro

    @property
    def micro_batch_size(self) -> int:
        return self.local_batch // self.micro_batches

    def build_model(self) -> nn.Module:
        model = ResNet50(self.num_classes, self.options.width).to(self.device)
        return model.to(memory_format=torch.channels_last) if self.cuda else model

    def build_optimizer(self, model: nn.Module, no_decay=()) -> torch.optim.Optimizer:
        o = self.options
        not_kernels = [p for n, p in model.named_parameters() if p.ndim <= 1]  # batch norm and biases
        groups = param_groups(model, o.weight_decay, [*no_decay, *not_kernels])
        return torch.optim.SGD(groups, lr=self.learning_rate(1), momentum=o.momentum, nesterov=o.nesterov)

    def learning_rate(self, step: int) -> float:
        o = self.options
        epoch = (step - 1) / self.steps_per_epoch
        base = o.lr_per_256 * o.batch_size / 256
        warmup = min(1.0, step / (o.warmup_epochs * self.steps_per_epoch)) if o.warmup_epochs > 0 else 1.0
        return base * warmup * o.decay_factor ** sum(epoch >= e for e in o.decay_epochs)

    def batch(self, step: int):
        epoch, index = divmod(step - 1, self.steps_per_epoch)
        if self._next != (epoch, index):  # a new epoch, or a resume mid-epoch
            loader = imagenet.train_loader(
                self.train_set,
                self.local_batch,
                self.seed,
                epoch,
                self.rank,
                self.world,
                self.options.loader_workers,
                self.options.image_size,
                start_batch=index,
            )
            self._iterator = iter(loader)
        x, y = next(self._iterator)
        self._next = (epoch, index + 1) if index + 1 < self.steps_per_epoch else None
        memory = torch.channels_last if self.cuda else torch.contiguous_format
        return x.to(self.device, non_blocking=True, memory_format=memory), y.to(self.device, non_blocking=True)

    def loss(self, model, batch) -> torch.Tensor:
        x, y = batch
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cuda):
            logits = model(x)
        return nn.functional.cross_entropy(logits.float(), y, label_smoothing=self.options.label_smoothing)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> float:
        """Top-1 on the validation split (all of it, across workers)."""
        o = self.options
        loader = imagenet.eval_loader(
            self.val_set, o.eval_batch_size, self.rank, self.world, o.loader_workers, o.image_size, o.resize_size
        )
        model.eval()
        correct = torch.zeros(2, device=self.device)
        for x, y in loader:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cuda):
                logits = model(x.to(self.device))
            correct += torch.tensor([(logits.argmax(1).cpu() == y).sum().item(), len(y)], device=self.device)
        model.train()
        if self.world > 1:
            dist.all_reduce(correct)
        return (correct[0] / correct[1]).item() if correct[1] > 0 else math.nan
