"""The ResNet-50 / ImageNet task's declaration (implemented in trainables/tasks/resnet/task.py), torch-free."""

from __future__ import annotations

import dataclasses

from methods.config import option
from trainables.tasks import declare
from trainables.tasks.options import TaskSpec

TRAIN_IMAGES, VAL_IMAGES, CLASSES = 1_281_167, 50_000, 1000  # ILSVRC-2012 sizes, used by data_dir="synthetic"


@dataclasses.dataclass(frozen=True)
class ResNetOptions:
    data_dir: str = option(help="ImageNet folder with train/<wnid>/*.JPEG and val/<wnid>/*.JPEG, or 'synthetic'")
    train_steps: int = option(128_000, "optimizer steps", "[1, 1e12]")
    batch_size: int = option(1024, "global batch (all workers together)", "[1, 1e7]")
    micro_batch_size: int = option(
        0, "per-worker micro-batch; smaller than the per-worker batch = accumulation (0: no)", "[0, 1e7]"
    )
    lr_per_256: float = option(0.1, "learning rate per 256 images (0.4 at batch 1024)", "(0, 1000]")
    warmup_epochs: float = option(5.0, "linear warmup from 0", "[0, 1e6]")
    decay_epochs: list[int] = option([30, 60, 80], "epochs at which the rate is multiplied by decay_factor", "[0, 1e6]")
    decay_factor: float = option(0.1, "step decay factor", "(0, 1]")
    momentum: float = option(0.9, "SGD momentum (Nesterov)", "[0, 1)")
    nesterov: bool = option(True, "Nesterov momentum")
    weight_decay: float = option(1e-4, "L2 on conv and FC kernels only", "[0, 10]")
    label_smoothing: float = option(0.1, "label smoothing (study's grid: 0, 0.1)", "[0, 1)")
    width: int = option(64, "base width (64 is ResNet-50; tests use narrow nets)", "[1, 65536]")
    image_size: int = option(224, "training and evaluation crop", "[1, 65536]")
    resize_size: int = option(256, "evaluation resize of the shorter side before the centre crop", "[1, 65536]")
    eval_every: int = option(5_000, "steps between evaluations (each one also checkpoints)", "[1, 1e12]")
    eval_batch_size: int = option(250, "per-worker evaluation batch", "[1, 1e7]")
    loader_workers: int = option(8, "data-loading processes per worker", "[0, 1024]")
    synthetic_images: int = option(
        TRAIN_IMAGES, "training set size in synthetic mode (sets the epoch length)", "[1, 1e10]"
    )
    synthetic_classes: int = option(1000, "classes in synthetic mode", "[2, 1e6]")

    def __post_init__(self):
        for name in ("train_steps", "batch_size", "eval_every", "eval_batch_size", "width", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.micro_batch_size < 0 or self.loader_workers < 0:
            raise ValueError("micro_batch_size and loader_workers must be >= 0")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")


@declare
class ResNetSpec(TaskSpec):
    name = "resnet50_imagenet"
    implementation = "trainables.tasks.resnet.task:ResNet50ImageNet"
    Options = ResNetOptions
    metric = "top1"
    mode = "max"
    max_workers = 1024

    @classmethod
    def total_steps_for(cls, options: ResNetOptions) -> int:
        return options.train_steps

    @classmethod
    def lengthened(cls, options: ResNetOptions, factor: float) -> ResNetOptions:
        """More steps with the decay epochs scaled alike (the study's `lr_scaled` scratch-b runs); same warmup."""
        return dataclasses.replace(
            options,
            train_steps=max(1, round(options.train_steps * factor)),
            decay_epochs=[e * factor for e in options.decay_epochs],
        )
