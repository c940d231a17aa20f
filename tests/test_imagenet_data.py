"""Unit tests for `trainables.imagenet` on a tiny JPEG tree written to tmp_path in the ImageNet folder layout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from trainables.tasks.resnet import imagenet
from trainables.tasks.resnet.imagenet import (
    EvalTransform,
    ImageFolder,
    SyntheticImages,
    TrainTransform,
    epoch_permutation,
    eval_loader,
    random_resized_crop_params,
    sample_generator,
    train_loader,
)

WNIDS = ["n01440764", "n01443537", "n01484850"]
TRAIN_PER_CLASS, VAL_PER_CLASS = 6, 2
S, RESIZE = 32, 36  # small image_size / resize_size
MEAN, STD = torch.tensor(imagenet.MEAN)[:, None, None], torch.tensor(imagenet.STD)[:, None, None]


def _noise_image(rng: np.random.Generator, size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    w, h = size
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def _write_tree(root, wnids=WNIDS, train=TRAIN_PER_CLASS, val=VAL_PER_CLASS, seed=0):
    """root/{train,val}/<wnid>/*.JPEG with random sizes 40x30 / 30x50; a few other extensions, a grey image, and
    files that are not images (which must be ignored)."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("val", val)):
        for c, wnid in enumerate(wnids):
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for k in range(count):
                size = (40, 30) if (k + c) % 2 == 0 else (30, 50)
                ext = {(2, 1): ".png", (2, 3): ".Jpeg", (1, 4): ".jpg"}.get((c, k), ".JPEG")
                mode = "L" if (c, k) == (1, 2) and split == "train" else "RGB"
                _noise_image(rng, size, mode).save(folder / f"{wnid}_{k:04d}{ext}")
            (folder / "notes.txt").write_text("not an image")
            (folder / "._resource_fork.JPEG").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return _write_tree(tmp_path_factory.mktemp("imagenet"))


def _batches(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


def _equal_batches(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))


# ------------------------------------------------------------------------------------------------- folder layout


def test_classes_and_counts(tree):
    train, val = ImageFolder(tree, "train"), ImageFolder(tree, "val")
    assert train.classes == WNIDS and val.classes == WNIDS
    assert train.class_to_idx == val.class_to_idx == {w: i for i, w in enumerate(WNIDS)}
    assert len(train) == 3 * TRAIN_PER_CLASS and len(val) == 3 * VAL_PER_CLASS
    assert train.targets.tolist() == [c for c in range(3) for _ in range(TRAIN_PER_CLASS)]
    paths = [p for p, _ in train.samples]
    assert paths == sorted(paths)
    assert all(f"/{WNIDS[label]}/" in path for path, label in train.samples + val.samples)
    assert sum(p.endswith((".png", ".Jpeg", ".jpg")) for p in paths) == 3


def test_val_uses_the_train_class_mapping(tmp_path):
    _write_tree(tmp_path)
    for wnid in WNIDS[:1]:
        for f in (tmp_path / "val" / wnid).iterdir():
            f.unlink()
        (tmp_path / "val" / wnid).rmdir()
    val = ImageFolder(tmp_path, "val")
    assert val.targets.tolist() == [1, 1, 2, 2]  # its own folders alone would give 0, 0, 1, 1


def test_decodes_to_rgb(tree):
    ds = ImageFolder(tree, "train")
    grey = next(i for i, (p, _) in enumerate(ds.samples) if p.endswith(f"{WNIDS[1]}_0002.JPEG"))
    for i in (0, grey):
        image, label = ds[i]
        assert image.mode == "RGB" and label == ds.targets[i]
        assert image.size in ((40, 30), (30, 50))
    r, g, b = np.array(ds[grey][0]).transpose(2, 0, 1)
    assert np.array_equal(r, g) and np.array_equal(g, b)


# ---------------------------------------------------------------------------------------------------- transforms


def test_transform_shapes(tree):
    ds = ImageFolder(tree, "train")
    for i in range(len(ds)):
        image = ds.load(i)
        x = TrainTransform(S)(image, sample_generator(0, 0, i))
        assert x.shape == (3, S, S) and x.dtype == torch.float32
        assert EvalTransform(S, RESIZE)(image).shape == (3, S, S)
    x, y = next(iter(train_loader(tree, 4, seed=0, epoch=0, workers=0, image_size=S)))
    assert x.shape == (4, 3, S, S) and y.shape == (4,) and y.dtype == torch.int64
    x, y = next(iter(eval_loader(tree, 5, workers=0, image_size=S, resize_size=RESIZE)))
    assert x.shape == (5, 3, S, S)


@pytest.mark.parametrize("colour", [(200, 100, 50), (0, 255, 17)])
def test_normalisation_of_a_solid_colour(tmp_path, colour):
    Image.new("RGB", (50, 40), colour).save(tmp_path / "solid.png")  # lossless, unlike JPEG
    image = Image.open(tmp_path / "solid.png").convert("RGB")
    expected = [(v / 255 - m) / s for v, m, s in zip(colour, imagenet.MEAN, imagenet.STD)]
    for x in (EvalTransform(S, RESIZE)(image), TrainTransform(S)(image, sample_generator(0, 0, 0))):
        for channel, value in zip(x, expected):
            assert torch.allclose(channel.double(), torch.full_like(channel.double(), value), rtol=0, atol=1e-6)


def test_centre_crop_takes_the_middle():
    # shorter side already equals resize_size, so no resampling: the crop starts at row 2, column 8
    xs, ys = np.meshgrid(np.arange(48), np.arange(36))
    pixels = np.stack([xs * 5, ys * 7, np.full_like(xs, 9)], axis=-1).astype(np.uint8)
    x = EvalTransform(S, RESIZE)(Image.fromarray(pixels, "RGB"))
    raw = (x * STD + MEAN) * 255
    assert torch.allclose(raw[0, 0], torch.arange(8, 8 + S, dtype=torch.float32) * 5, atol=1e-3)
    assert torch.allclose(raw[1, :, 0], torch.arange(2, 2 + S, dtype=torch.float32) * 7, atol=1e-3)


def test_centre_crop_rounds_half_offsets_like_torchvision():
    # 41 rows - 32 = 9: top = int(round(4.5)) = 4 (Python rounds half to even), as torchvision's center_crop
    ys = np.repeat(np.arange(41)[:, None] * 6, 36, axis=1)
    x = EvalTransform(S, RESIZE)(Image.fromarray(np.stack([ys] * 3, axis=-1).astype(np.uint8), "RGB"))
    raw = ((x * STD + MEAN) * 255)[0, :, 0]
    assert torch.allclose(raw, torch.arange(4, 4 + S, dtype=torch.float32) * 6, atol=1e-3)


def test_eval_resizes_the_shorter_side(tmp_path):
    # a 30x50 (w x h) image becomes 36x60: the centre crop then starts 14 rows down; check it on a row-coded image
    rows = np.repeat(np.arange(50, dtype=np.uint8)[:, None] * 5, 30, axis=1)
    x = EvalTransform(S, RESIZE)(Image.fromarray(np.stack([rows] * 3, axis=-1), "RGB"))
    raw = ((x * STD + MEAN) * 255)[0, :, 0]
    scale = 50 / 60  # source rows per output row
    centres = (torch.arange(14, 14 + S, dtype=torch.float32) + 0.5) * scale - 0.5
    assert torch.allclose(raw, centres.clamp(0, 49) * 5, atol=1.0)


def test_random_resized_crop_stays_within_scale_and_ratio():
    width, height, n = 200, 160, 2000
    params = [random_resized_crop_params(width, height, sample_generator(3, 0, i)) for i in range(n)]
    top, left, h, w = (torch.tensor(v, dtype=torch.float64) for v in zip(*params))
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= height).all() and (left + w <= width).all()
    area, ratio = h * w / (width * height), w / h
    assert area.min() >= 0.08 * 0.97 and area.max() <= 1.0  # 3% slack for rounding w and h to pixels
    assert ratio.min() >= 0.75 * 0.97 and ratio.max() <= 4 / 3 * 1.03
    assert area.min() < 0.1 and area.max() > 0.9  # the whole range is drawn
    assert ratio.min() < 0.8 and ratio.max() > 1.25
    assert 0.3 < (ratio < 1).double().mean() < 0.7  # log-uniform ratio: symmetric about 1
    assert abs(area.median().item() - 0.5) < 0.1  # uniform area fraction in [0.08, 1] (few rejections here)


def test_random_resized_crop_falls_back_to_a_clamped_centre_crop():
    gen = torch.Generator().manual_seed(0)
    # no area fraction >= 0.08 fits in 10 rows at ratio <= 4/3, so all 10 tries fail
    assert random_resized_crop_params(200, 10, gen) == (0, 93, 10, 13)
    assert random_resized_crop_params(10, 200, gen) == (93, 0, 13, 10)
    assert random_resized_crop_params(30, 30, gen, scale=(1, 1), ratio=(1, 1)) == (0, 0, 30, 30)


def test_flips_happen_about_half_the_time():
    half = np.zeros((16, 16, 3), dtype=np.uint8)
    half[:, 8:] = 255
    image = Image.fromarray(half, "RGB")  # dark left half, bright right half
    transform = TrainTransform(16, scale=(1, 1), ratio=(1, 1))  # the crop is the whole image: only the flip varies
    outputs = [transform(image, sample_generator(0, 0, i)) for i in range(400)]
    flipped = [bool(x[0, 0, 0] > x[0, 0, -1]) for x in outputs]
    assert 0.4 < sum(flipped) / len(flipped) < 0.6
    a, b = outputs[flipped.index(False)], outputs[flipped.index(True)]
    assert torch.equal(a.flip(-1), b)


# ------------------------------------------------------------------------------------------ determinism, sharding


def test_same_seed_and_epoch_give_identical_batches(tree):
    kw = dict(batch_size=4, seed=7, epoch=2, image_size=S)
    first = _batches(train_loader(tree, workers=0, **kw))
    assert _equal_batches(first, _batches(train_loader(tree, workers=0, **kw)))
    assert _equal_batches(first, _batches(train_loader(tree, workers=2, **kw)))


def test_other_epoch_or_seed_gives_other_crops(tree):
    ds = ImageFolder(tree, "train")
    base = ds.with_transform(TrainTransform(S), seed=7, epoch=2)[5][0]
    assert not torch.equal(base, ds.with_transform(TrainTransform(S), seed=7, epoch=3)[5][0])
    assert not torch.equal(base, ds.with_transform(TrainTransform(S), seed=8, epoch=2)[5][0])
    runs = ((7, 2), (7, 3), (8, 2))
    orders = [list(train_loader(tree, 4, seed, epoch, workers=0).batch_sampler) for seed, epoch in runs]
    assert orders[0] != orders[1] and orders[0] != orders[2]  # the visiting order changes too, not only the crops
    first = _batches(train_loader(tree, 4, seed=7, epoch=2, workers=0, image_size=S))
    assert not _equal_batches(first, _batches(train_loader(tree, 4, seed=7, epoch=3, workers=0, image_size=S)))
    assert not _equal_batches(first, _batches(train_loader(tree, 4, seed=8, epoch=2, workers=0, image_size=S)))


def test_labels_follow_the_sampled_indices(tree):
    loader = train_loader(tree, 4, seed=1, epoch=0, workers=0, image_size=S)
    targets = ImageFolder(tree, "train").targets
    for indices, (x, y) in zip(loader.batch_sampler, loader):
        assert y.tolist() == targets[indices].tolist()
        assert torch.equal(x, torch.stack([loader.dataset[i][0] for i in indices]))


def test_ranks_see_disjoint_slices_of_the_epoch(tree):
    batch, seed, epoch, n = 4, 3, 1, 3 * TRAIN_PER_CLASS
    loaders = [train_loader(tree, batch, seed, epoch, rank=r, world_size=2, workers=0, image_size=S) for r in (0, 1)]
    k = n // (2 * batch)
    assert [len(loader) for loader in loaders] == [k, k] == [len(list(loader)) for loader in loaders]
    seen = [[i for b in loader.batch_sampler for i in b] for loader in loaders]
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == sorted(epoch_permutation(n, seed, epoch)[: 2 * k * batch].tolist())
    # for a fixed global batch the step's samples do not depend on the world size
    single = train_loader(tree, 2 * batch, seed, epoch, workers=0, image_size=S)
    for step, whole in enumerate(single.batch_sampler):
        shards = [list(loader.batch_sampler)[step] for loader in loaders]
        assert whole == shards[0] + shards[1]


@pytest.mark.parametrize("world_size", [1, 2])
def test_start_batch_resumes_exactly(tree, world_size):
    kw = dict(batch_size=2, seed=5, epoch=4, rank=world_size - 1, world_size=world_size, workers=0, image_size=S)
    full = _batches(train_loader(tree, **kw))
    assert len(full) == 3 * TRAIN_PER_CLASS // (2 * world_size)
    resumed = _batches(train_loader(tree, start_batch=2, **kw))
    assert len(resumed) == len(full) - 2 and _equal_batches(resumed, full[2:])
    assert _batches(train_loader(tree, start_batch=len(full), **kw)) == []
    with pytest.raises(ValueError, match="start_batch"):
        train_loader(tree, start_batch=len(full) + 1, **kw)


@pytest.mark.parametrize("world_size", [2, 4])
def test_eval_sees_every_val_image_once(tree, world_size):
    kw = dict(batch_size=2, workers=0, image_size=S, resize_size=RESIZE)
    whole = torch.cat([x for x, _ in eval_loader(tree, **kw)])
    n = 3 * VAL_PER_CLASS
    assert len(whole) == n
    indices, images = [], []
    for rank in range(world_size):
        loader = eval_loader(tree, rank=rank, world_size=world_size, **kw)
        indices += [i for b in loader.batch_sampler for i in b]
        images += [x for batch, _ in loader for x in batch]
    assert sorted(indices) == list(range(n))
    assert all(torch.equal(images[k], whole[i]) for k, i in enumerate(indices))


# ------------------------------------------------------------------------------------------------ synthetic data


def test_synthetic_images():
    ds = SyntheticImages(10, num_classes=5, image_size=16)
    x, y = ds[3]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and 0 <= y < 5
    assert {ds[i][1] for i in range(10)} <= set(range(5)) and len({ds[i][1] for i in range(10)}) > 1
    batches = _batches(train_loader(ds, 4, seed=0, epoch=0, workers=0))
    assert len(batches) == 2 and all(x.shape == (4, 3, 16, 16) and y.dtype == torch.int64 for x, y in batches)
    loader = train_loader("synthetic", 2, seed=0, epoch=0, workers=0, image_size=8)
    assert len(loader) == imagenet.TRAIN_IMAGES // 2
    x, y = next(iter(loader))
    assert x.shape == (2, 3, 8, 8) and ((0 <= y) & (y < 1000)).all()
    assert len(eval_loader("synthetic", 1000, workers=0, image_size=8)) == math.ceil(imagenet.VAL_IMAGES / 1000)


# --------------------------------------------------------------------------------------------------------- errors


def _error(exc, fn, *args, **kw) -> str:
    with pytest.raises(exc) as info:
        fn(*args, **kw)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_root(tmp_path):
    assert str(tmp_path / "nope") in _error(FileNotFoundError, ImageFolder, tmp_path / "nope", "train")


def test_missing_split_folder(tmp_path):
    _write_tree(tmp_path)
    for f in (tmp_path / "val").rglob("*"):
        f.unlink() if f.is_file() else None
    for d in sorted((tmp_path / "val").iterdir()):
        d.rmdir()
    (tmp_path / "val").rmdir()
    assert str(tmp_path / "val") in _error(FileNotFoundError, ImageFolder, tmp_path, "val")


def test_no_classes(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "stray.JPEG").write_bytes(b"")
    assert str(tmp_path / "train") in _error(ValueError, ImageFolder, tmp_path, "train")


def test_class_folder_without_images(tmp_path):
    _write_tree(tmp_path)
    empty = tmp_path / "train" / "n09999999"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    assert str(empty) in _error(ValueError, ImageFolder, tmp_path, "train")


def test_val_class_missing_from_train(tmp_path):
    _write_tree(tmp_path)
    extra = tmp_path / "val" / "n09999999"
    extra.mkdir()
    Image.new("RGB", (8, 8)).save(extra / "a.JPEG")
    message = _error(ValueError, ImageFolder, tmp_path, "val")
    assert "n09999999" in message
    assert len(ImageFolder(tmp_path, "train")) == 3 * TRAIN_PER_CLASS  # the train split is unaffected


def test_bad_arguments(tree):
    assert "split" in _error(ValueError, ImageFolder, tree, "test")
    assert "rank" in _error(ValueError, train_loader, tree, 4, 0, 0, rank=2, world_size=2)
    assert "global batch" in _error(ValueError, train_loader, tree, 16, 0, 0, world_size=2, workers=0)
    assert "val" in _error(ValueError, train_loader, ImageFolder(tree, "val"), 2, 0, 0, workers=0)
    assert "resize_size" in _error(ValueError, EvalTransform, 40, 36)
