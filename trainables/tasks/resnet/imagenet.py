"""ImageNet input pipeline for the standard folder layout, with PIL and torch only (torchvision does not import here).

Expected layout (the one `torchvision.datasets.ImageFolder` reads; the val split already sorted into class folders,
e.g. by the usual `valprep.sh`)::

    root/train/n01440764/n01440764_10026.JPEG
    root/train/n01443537/...
    root/val/n01440764/ILSVRC2012_val_00000293.JPEG
    ...

Files are read from each class folder directly (no recursion); extensions .JPEG/.jpg/.jpeg/.png in any case;
names starting with "." are ignored. Classes are the sorted folder names of the train split, and both splits use
that class -> index mapping.

Transforms follow torchvision's semantics and draw their random numbers in the same order: training is
RandomResizedCrop(224, scale=(0.08, 1), ratio=(3/4, 4/3), bilinear) then a horizontal flip with p=0.5; evaluation is
Resize(256) on the shorter side (bilinear) then CenterCrop(224); both end with ToTensor and the ImageNet mean/std
Normalize of state-of-sparsity.md §2.2.

Determinism: the crop and flip of sample i in epoch e come from a generator seeded by (seed, e, i) alone, and the
epoch's order from one seeded by (seed, e), so batches do not depend on the number of workers, on the world size for
a fixed global batch, or on resuming mid-epoch with `start_batch`.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Iterator

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from trainables.tasks.resnet.options import CLASSES, TRAIN_IMAGES, VAL_IMAGES  # ILSVRC-2012 sizes

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
EXTENSIONS = (".jpeg", ".jpg", ".png")
SPLITS = ("train", "val")
DEFAULT_WORKERS = min(8, os.cpu_count() or 1)

Transform = Callable[[Image.Image, torch.Generator], torch.Tensor]

_MASK64 = (1 << 64) - 1
_PERMUTATION, _SAMPLE, _SYNTHETIC = 1, 2, 3  # domain tags, so e.g. an order seed never equals a sample seed


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def mix_seed(*values: int) -> int:
    """A 64-bit seed that is a pure function of the integers given (any sign), well spread for nearby inputs."""
    h = 0
    for v in values:
        h = _splitmix64(h ^ (int(v) & _MASK64))
    return h


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator that draws the augmentation of sample `index` in `epoch`."""
    return torch.Generator().manual_seed(mix_seed(_SAMPLE, seed, epoch, index))


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order in which the `n` training samples are visited in `epoch` (the same on every rank)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(_PERMUTATION, seed, epoch)))


# ---------------------------------------------------------------------------------------------------- transforms


def random_resized_crop_params(
    width: int,
    height: int,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the crop, as torchvision's `RandomResizedCrop.get_params`: 10 tries at a random
    area fraction in `scale` and log-uniform aspect ratio in `ratio`, then a centre crop clamped to `ratio`."""
    area = height * width
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1], generator=generator).item()
        log_aspect = torch.empty(1).uniform_(log_ratio[0].item(), log_ratio[1].item(), generator=generator)
        aspect = torch.exp(log_aspect).item()  # exp in float32, as torchvision, so w and h round the same way
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, size=(1,), generator=generator).item())
            left = int(torch.randint(0, width - w + 1, size=(1,), generator=generator).item())
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def _resize(image: Image.Image, width: int, height: int) -> Image.Image:
    return image if image.size == (width, height) else image.resize((width, height), Image.BILINEAR)


def to_normalized_tensor(image: Image.Image) -> torch.Tensor:
    """float32 (3, H, W): ToTensor (uint8 / 255) then Normalize with the ImageNet mean and std, as torchvision."""
    x = torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8, copy=True)).permute(2, 0, 1).contiguous()
    x = x.to(torch.float32).div(255)
    return x.sub_(torch.tensor(MEAN)[:, None, None]).div_(torch.tensor(STD)[:, None, None])


class TrainTransform:
    """RandomResizedCrop(image_size, scale, ratio, bilinear) + RandomHorizontalFlip(0.5) + ToTensor + Normalize."""

    def __init__(
        self,
        image_size: int = 224,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
    ):
        if image_size < 1 or not 0 < scale[0] <= scale[1] or not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"bad RandomResizedCrop settings: size {image_size}, scale {scale}, ratio {ratio}")
        self.image_size, self.scale, self.ratio = image_size, scale, ratio

    def __call__(self, image: Image.Image, generator: torch.Generator) -> torch.Tensor:
        top, left, h, w = random_resized_crop_params(image.width, image.height, generator, self.scale, self.ratio)
        image = _resize(image.crop((left, top, left + w, top + h)), self.image_size, self.image_size)
        if torch.rand(1, generator=generator).item() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        return to_normalized_tensor(image)


class EvalTransform:
    """Resize(resize_size) of the shorter side (bilinear) + CenterCrop(image_size) + ToTensor + Normalize."""

    def __init__(self, image_size: int = 224, resize_size: int = 256):
        if not 1 <= image_size <= resize_size:
            raise ValueError(f"need 1 <= image_size <= resize_size, got {image_size} and {resize_size}")
        self.image_size, self.resize_size = image_size, resize_size

    def __call__(self, image: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        w, h = image.size
        short, long = min(w, h), max(w, h)
        new_short, new_long = self.resize_size, int(self.resize_size * long / short)  # torchvision's rounding
        image = _resize(image, *((new_short, new_long) if w <= h else (new_long, new_short)))
        s = self.image_size
        top, left = int(round((image.height - s) / 2.0)), int(round((image.width - s) / 2.0))
        return to_normalized_tensor(image.crop((left, top, left + s, top + s)))


# ------------------------------------------------------------------------------------------------------ data sets


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(EXTENSIONS)


def _class_folders(split_dir: str) -> list[str]:
    if not os.path.isdir(split_dir):
        raise FileNotFoundError(f"split folder {split_dir} does not exist (expected root/train and root/val)")
    classes = sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise ValueError(f"no class folders in {split_dir} (expected {split_dir}/<wnid>/*.JPEG)")
    return classes


class ImageFolder(Dataset):
    """The images of one split (`"train"` or `"val"`) of an ImageNet-style tree `root/<split>/<wnid>/*.JPEG`.

    `classes` are the sorted train-split folder names and `class_to_idx` maps them to labels, for both splits; a val
    folder whose name is not a train class is an error. Samples are sorted by class, then file name. Item i is
    `(transform(image, sample_generator(seed, epoch, i)), label)`, or `(PIL RGB image, label)` with no transform.
    Paths are held as one numpy byte array, which forked DataLoader workers share without copy-on-read growth.
    """

    def __init__(
        self, root: str | os.PathLike, split: str, transform: Transform | None = None, seed: int = 0, epoch: int = 0
    ):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.root, self.split = os.fspath(root), split
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"ImageNet root {self.root} does not exist")
        self.split_dir = os.path.join(self.root, split)
        self.classes = _class_folders(os.path.join(self.root, "train"))
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        files, targets = self._scan(self.split_dir)
        self._files, self.targets = np.array(files, dtype=np.bytes_), np.array(targets, dtype=np.int64)
        self.transform, self.seed, self.epoch = transform, seed, epoch

    def _scan(self, split_dir: str) -> tuple[list[bytes], list[int]]:
        files, targets = [], []
        for wnid in _class_folders(split_dir):
            if wnid not in self.class_to_idx:
                raise ValueError(f"{self.split} class {wnid} in {split_dir} is not a class of the train split")
            folder = os.path.join(split_dir, wnid)
            names = sorted(e.name for e in os.scandir(folder) if e.is_file() and _is_image(e.name))
            if not names:
                raise ValueError(f"class folder {folder} has no images (*.JPEG, *.jpg, *.jpeg, *.png)")
            files += [os.fsencode(os.path.join(wnid, name)) for name in names]
            targets += [self.class_to_idx[wnid]] * len(names)
        return files, targets

    def __len__(self) -> int:
        return len(self._files)

    def path(self, index: int) -> str:
        return os.path.join(self.split_dir, os.fsdecode(self._files[index]))

    @property
    def samples(self) -> list[tuple[str, int]]:
        """(path, label) of every sample, in order (builds a list: for inspection, not for the training loop)."""
        return [(self.path(i), int(t)) for i, t in enumerate(self.targets)]

    def load(self, index: int) -> Image.Image:
        """The decoded image, converted to RGB (grey and CMYK JPEGs too)."""
        with open(self.path(index), "rb") as f:
            return Image.open(f).convert("RGB")

    def __getitem__(self, index: int) -> tuple[torch.Tensor | Image.Image, int]:
        image, label = self.load(index), int(self.targets[index])
        if self.transform is None:
            return image, label
        return self.transform(image, sample_generator(self.seed, self.epoch, index)), label

    def with_transform(self, transform: Transform | None, seed: int = 0, epoch: int = 0) -> ImageFolder:
        """A view sharing this one's file list, with another transform, seed and epoch (no rescan of the disk)."""
        view = copy.copy(self)
        view.transform, view.seed, view.epoch = transform, seed, epoch
        return view


class SyntheticImages(Dataset):
    """`n` random already-normalised images (3, image_size, image_size) and labels in [0, num_classes), for
    measuring training throughput without touching disk or decoding JPEGs.

    Labels are fixed by `seed`; images cycle through a pool of `pool` standard-normal tensors, made lazily in each
    worker, so an item costs no more than its copy into the batch.
    """

    def __init__(self, n: int, num_classes: int = CLASSES, image_size: int = 224, seed: int = 0, pool: int = 64):
        if n < 1 or num_classes < 1 or image_size < 1 or pool < 1:
            raise ValueError(f"need n, num_classes, image_size, pool >= 1; got {n, num_classes, image_size, pool}")
        self.n, self.num_classes, self.image_size, self.seed, self.pool = n, num_classes, image_size, seed, pool
        gen = torch.Generator().manual_seed(mix_seed(_SYNTHETIC, seed))
        self.targets = torch.randint(num_classes, (n,), generator=gen)
        self._images: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self._images is None:
            gen = torch.Generator().manual_seed(mix_seed(_SYNTHETIC, self.seed, -1))
            self._images = torch.randn(self.pool, 3, self.image_size, self.image_size, generator=gen)
        return self._images[index % self.pool], int(self.targets[index])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_images": None}  # workers remake the pool rather than receive it pickled


# -------------------------------------------------------------------------------------------------------- loaders


class ShardedBatches(Sampler[list[int]]):
    """Batches of indices for one rank.

    Training (`shuffle=True`): global batch b of the epoch is `perm[b*G:(b+1)*G]` with G = batch_size * world_size and
    `perm = epoch_permutation(n, seed, epoch)`; rank r takes its r-th batch_size slice. The n % G samples after the last
    full global batch are dropped, so every rank yields n // G batches. Batches before `start_batch` are skipped.

    Evaluation (`shuffle=False`): rank r takes indices r, r + world_size, r + 2*world_size, ... of the sorted samples,
    so each image is seen exactly once across ranks; when n % world_size != 0 the first n % world_size ranks hold one
    image more, so ranks can differ by one (possibly partial) batch: reduce sums of (correct, count) once at the end,
    never per batch.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        seed: int = 0,
        epoch: int = 0,
        start_batch: int = 0,
    ):
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need batch_size >= 1 and 0 <= rank < world_size, got {batch_size}, {rank}, {world_size}")
        self.n, self.batch_size, self.rank, self.world_size = n, batch_size, rank, world_size
        self.shuffle, self.seed, self.epoch = shuffle, seed, epoch
        full = self.batches_per_epoch()
        if not 0 <= start_batch <= full:
            raise ValueError(f"start_batch must be in [0, {full}], got {start_batch}")
        self.start_batch = start_batch

    def batches_per_epoch(self) -> int:
        """Batches this rank yields in a whole epoch (before `start_batch` is taken off)."""
        if self.shuffle:
            return self.n // (self.batch_size * self.world_size)
        return math.ceil(len(range(self.rank, self.n, self.world_size)) / self.batch_size)

    def _indices(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.rank, self.n, self.world_size))
        b, g = self.batch_size, self.batch_size * self.world_size
        perm = epoch_permutation(self.n, self.seed, self.epoch)[: self.batches_per_epoch() * g].view(-1, g)
        return perm[:, self.rank * b : (self.rank + 1) * b].reshape(-1).tolist()

    def __iter__(self) -> Iterator[list[int]]:
        indices = self._indices()
        for start in range(self.start_batch * self.batch_size, len(indices), self.batch_size):
            yield indices[start : start + self.batch_size]

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.start_batch


def _base(root: str | os.PathLike | Dataset, split: str, image_size: int, seed: int) -> Dataset:
    if isinstance(root, (ImageFolder, SyntheticImages)):
        if isinstance(root, ImageFolder) and root.split != split:
            raise ValueError(f"the {split} loader was given the {root.split} split of {root.root}")
        return root
    if os.fspath(root) == "synthetic":
        return SyntheticImages(TRAIN_IMAGES if split == "train" else VAL_IMAGES, CLASSES, image_size, seed)
    return ImageFolder(root, split)


def _loader(dataset: Dataset, batches: ShardedBatches, workers: int, seed: int) -> DataLoader:
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
        # the loader draws its workers' base seed from this, not from (and advancing) the global RNG
        generator=torch.Generator().manual_seed(mix_seed(seed, batches.epoch)),
    )


def train_loader(
    root: str | os.PathLike | Dataset,
    batch_size: int,
    seed: int,
    epoch: int,
    rank: int = 0,
    world_size: int = 1,
    workers: int = DEFAULT_WORKERS,
    image_size: int = 224,
    start_batch: int = 0,
) -> DataLoader:
    """One epoch of augmented training batches `(images (B, 3, S, S) float32, labels (B,) int64)` for `rank`.

    `root` is the ImageNet folder (its train split is scanned on each call), an `ImageFolder` of the train split
    built once (no rescan: do this for the real 1.28M images), "synthetic" (ImageNet-sized `SyntheticImages`), or a
    `SyntheticImages` (used as given, with its own image size). `batch_size` is per rank; see `ShardedBatches` for
    the sharding and `start_batch` (resume after that many batches of this epoch).
    """
    base = _base(root, "train", image_size, seed)
    dataset = base.with_transform(TrainTransform(image_size), seed, epoch) if isinstance(base, ImageFolder) else base
    batches = ShardedBatches(len(dataset), batch_size, rank, world_size, True, seed, epoch, start_batch)
    if batches.batches_per_epoch() == 0:
        raise ValueError(f"{len(dataset)} training images make no full global batch of {batch_size} x {world_size}")
    return _loader(dataset, batches, workers, seed)


def eval_loader(
    root: str | os.PathLike | Dataset,
    batch_size: int,
    rank: int = 0,
    world_size: int = 1,
    workers: int = DEFAULT_WORKERS,
    image_size: int = 224,
    resize_size: int = 256,
) -> DataLoader:
    """Every val image once across ranks, in sorted order, as `(images (B, 3, S, S), labels (B,))`; the last batch
    of a rank may be smaller. `root` as for `train_loader`, with the val split. See `ShardedBatches`."""
    base = _base(root, "val", image_size, seed=1)
    if isinstance(base, ImageFolder):
        base = base.with_transform(EvalTransform(image_size, resize_size))
    return _loader(base, ShardedBatches(len(base), batch_size, rank, world_size, shuffle=False), workers, seed=0)
