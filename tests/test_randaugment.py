"""BatchRandAugment: exact agreement with torchvision's RandAugment per image, per-sample draws, seeding."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import Tensor
from torchvision.transforms import v2

from difair.config import AugmentConfig
from difair.data.augment import Augmenter, TorchvisionRandAugment
from difair.data.randaugment import GEOMETRIC_OPS, OP_NAMES, BatchRandAugment

M = 9  # a mid-range magnitude: every op changes the image


def _images(b: int, c: int, h: int = 32, w: int = 32, seed: int = 0) -> Tensor:
    """Random uint8 images plus edge cases: a constant image and a two-level low-contrast one."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (b, c, h, w), dtype=torch.uint8, generator=g)
    x[0] = 77
    x[1] = torch.randint(100, 102, (c, h, w), dtype=torch.uint8, generator=g)
    return x


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny images: one thread is as fast, and immune to OpenMP stalls when other jobs share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def _torchvision_randaugment(fill: float | tuple[float, ...] | None) -> v2.RandAugment:
    return v2.RandAugment(num_ops=1, magnitude=M, fill=list(fill) if isinstance(fill, tuple) else fill)


def _torchvision_op(
    image: Tensor, name: str, magnitude: float, fill: float | tuple[float, ...] | None = 0
) -> Tensor:
    """One op on one image through torchvision's own RandAugment dispatch (the reference)."""
    ref = _torchvision_randaugment(fill)
    return ref._apply_image_or_video_transform(
        image, name, magnitude, interpolation=ref.interpolation, fill=ref._fill
    )


def _reference(ra: BatchRandAugment, images: Tensor, ops: Tensor, signs: Tensor) -> Tensor:
    """torchvision's ops applied image by image with the given per-sample draws."""
    mags = ra.magnitudes(images.shape[-2], images.shape[-1])
    fill = None if ra.fill is None else (ra.fill[0] if len(ra.fill) == 1 else tuple(ra.fill))
    out = []
    for i, image in enumerate(images):
        for r in range(ops.shape[0]):
            o = int(ops[r, i])
            image = _torchvision_op(image, ra.ops[o], mags[o] * int(signs[r, i]), fill)
        out.append(image)
    return torch.stack(out)


def _op_sign_cases() -> list[tuple[str, int]]:
    signed = {n for n, (_, s) in v2.RandAugment._AUGMENTATION_SPACE.items() if s}
    return [(n, s) for n in OP_NAMES for s in ((1, -1) if n in signed else (1,))]


def test_op_space_and_magnitude_tables_match_torchvision() -> None:
    space = v2.RandAugment._AUGMENTATION_SPACE
    assert tuple(space) == OP_NAMES
    for h, w in ((32, 32), (28, 36)):
        for m in (0, 6, 9, 30):
            ra = BatchRandAugment(1, m)
            for name, mag in zip(ra.ops, ra.magnitudes(h, w), strict=True):
                table = space[name][0](31, h, w)
                assert mag == (0.0 if table is None else float(table[m])), (name, m)


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("name,sign", _op_sign_cases())
def test_each_op_and_sign_matches_torchvision_per_image(name: str, sign: int, channels: int) -> None:
    x = _images(12, channels, 30, 34)
    ra = BatchRandAugment(1, M)
    b = x.shape[0]
    ops = torch.full((1, b), ra.ops.index(name))
    signs = torch.full((1, b), sign, dtype=torch.int8)
    out = ra.apply(x, ops, signs)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert torch.equal(out, _reference(ra, x, ops, signs))


@pytest.mark.parametrize(
    "channels,geometric,fill",
    [(3, True, 0), (1, True, None), (3, False, (10, 20, 30)), (3, True, 128), (1, True, 5)],
)
def test_mixed_batch_matches_torchvision_per_image(channels: int, geometric: bool, fill) -> None:
    x = _images(96, channels, 32, 28, seed=1)
    ra = BatchRandAugment(3, M, fill=fill, geometric=geometric)
    out = ra(x, torch.Generator().manual_seed(1))
    ops, signs = ra.last_ops
    assert torch.equal(out, _reference(ra, x, ops, signs))


def test_square_images_rotation_and_every_magnitude() -> None:
    # square images, all magnitudes of the geometric ops (rotate's fast paths, zero shifts at M=0)
    x = _images(4, 3)
    for m in (0, 1, 15, 30):
        ra = BatchRandAugment(1, m)
        for name in ("ShearX", "TranslateX", "TranslateY", "Rotate"):
            for sign in (1, -1):
                ops = torch.full((1, 4), ra.ops.index(name))
                signs = torch.full((1, 4), sign, dtype=torch.int8)
                assert torch.equal(ra.apply(x, ops, signs), _reference(ra, x, ops, signs)), (name, sign, m)


def test_per_sample_ops_are_independent_and_uniform() -> None:
    x = _images(4, 3)[3:].expand(512, -1, -1, -1).contiguous()  # 512 identical random images
    ra = BatchRandAugment(1, M)
    out = ra(x, torch.Generator().manual_seed(0))
    ops, signs = ra.last_ops
    counts = torch.bincount(ops[0], minlength=len(OP_NAMES)).double()
    expected = 512 / len(OP_NAMES)
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 34.5  # 13 degrees of freedom, p = 0.001 (fixed seed: deterministic)
    assert (counts > 0).all()
    signed = torch.tensor([s for _, s in v2.RandAugment._AUGMENTATION_SPACE.values()])[ops[0]]
    assert (signs[0][~signed] == 1).all()
    negative = (signs[0][signed] == -1).double().mean().item()
    assert 0.4 < negative < 0.6
    # identical inputs, per-sample ops: many distinct outputs (at most 24 (op, sign) results)
    distinct = torch.unique(out.flatten(1), dim=0).shape[0]
    assert distinct >= 20


def test_reproducible_from_generator_state() -> None:
    x = _images(64, 3)
    ra = BatchRandAugment(2, M)
    a = ra(x, torch.Generator().manual_seed(5))
    ops_a = ra.last_ops
    b = ra(x, torch.Generator().manual_seed(5))
    assert (
        torch.equal(a, b) and torch.equal(ops_a[0], ra.last_ops[0]) and torch.equal(ops_a[1], ra.last_ops[1])
    )
    c = ra(x, torch.Generator().manual_seed(6))
    assert not torch.equal(a, c)
    # the global RNG is not used when a generator is given
    torch.manual_seed(0)
    state = torch.get_rng_state()
    ra(x, torch.Generator().manual_seed(5))
    assert torch.equal(state, torch.get_rng_state())


def test_sample_ops_then_apply_equals_call() -> None:
    x = _images(32, 3)
    ra = BatchRandAugment(2, M)
    ops, signs = ra.sample_ops(32, torch.Generator().manual_seed(3))
    assert ops.shape == signs.shape == (2, 32) and ops.dtype == torch.int64 and signs.dtype == torch.int8
    assert torch.equal(ra.apply(x, ops, signs), ra(x, torch.Generator().manual_seed(3)))


def test_geometric_false_never_rotates_or_translates() -> None:
    ra = BatchRandAugment(2, M, geometric=False)
    assert ra.ops == tuple(n for n in OP_NAMES if n not in ("Rotate", "TranslateX", "TranslateY"))
    assert set(GEOMETRIC_OPS) == {"Rotate", "TranslateX", "TranslateY"}
    ops, _ = ra.sample_ops(4096, torch.Generator().manual_seed(0))
    used = {ra.ops[i] for i in ops.unique().tolist()}
    assert used == set(ra.ops) and not used & set(GEOMETRIC_OPS)
    full = BatchRandAugment(2, M)
    ops, _ = full.sample_ops(4096, torch.Generator().manual_seed(0))
    assert {full.ops[i] for i in ops.unique().tolist()} >= set(GEOMETRIC_OPS)


def test_single_channel() -> None:
    x = _images(64, 1, 28, 28)
    ra = BatchRandAugment(2, M)
    out = ra(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert torch.equal(out, _reference(ra, x, *ra.last_ops))


def test_changes_pixels_except_identity() -> None:
    x = _images(256, 3)
    ra = BatchRandAugment(1, M)
    out = ra(x, torch.Generator().manual_seed(0))
    ops = ra.last_ops[0][0]
    identity = ops == OP_NAMES.index("Identity")
    changed = (out != x).flatten(1).float().mean(1)  # fraction of changed values per sample
    assert torch.equal(out[identity], x[identity])
    assert 0.3 < changed.mean().item() < 0.95
    assert (changed[~identity][2:] > 0).float().mean().item() > 0.9  # nearly every augmented sample changes


def test_edge_cases_and_validation() -> None:
    x = _images(8, 3)
    assert torch.equal(BatchRandAugment(0, M)(x), x)
    empty = torch.zeros(0, 3, 32, 32, dtype=torch.uint8)
    assert BatchRandAugment(2, M)(empty).shape == empty.shape
    with pytest.raises(TypeError):
        BatchRandAugment(1, M)(x.float())
    with pytest.raises(ValueError):
        BatchRandAugment(1, M)(torch.zeros(2, 2, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError):
        BatchRandAugment(1, 31)
    with pytest.raises(ValueError):
        BatchRandAugment(1, M).apply(
            x, torch.zeros(1, 7, dtype=torch.long), torch.ones(1, 7, dtype=torch.int8)
        )
    with pytest.raises(ValueError):
        BatchRandAugment(1, M, geometric=False).apply(
            x, torch.full((1, 8), 11, dtype=torch.long), torch.ones(1, 8, dtype=torch.int8)
        )


def test_augmenter_backends() -> None:
    x = _images(16, 3)
    batched = Augmenter(AugmentConfig(backend="batched", randaugment_n=2, randaugment_ops="no_geometric"))
    assert isinstance(batched.randaugment, BatchRandAugment) and not batched.randaugment.geometric
    a = batched(x, torch.Generator().manual_seed(0))
    b = batched(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    assert isinstance(Augmenter(AugmentConfig()).randaugment, TorchvisionRandAugment)


def test_torchvision_backend_no_geometric_leaves_torchvision_alone() -> None:
    before = list(v2.RandAugment._AUGMENTATION_SPACE)
    op = TorchvisionRandAugment(1, M, geometric=False)
    assert "Rotate" not in op.op._AUGMENTATION_SPACE
    assert list(v2.RandAugment._AUGMENTATION_SPACE) == before and "Rotate" in before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_torchvision_per_image_on_cuda() -> None:
    x = _images(96, 3).cuda()
    ra = BatchRandAugment(2, M)
    out = ra(x, torch.Generator().manual_seed(0))
    assert out.device == x.device
    ops, signs = ra.last_ops
    ref = _reference(ra, x, ops, signs)
    # Contrast takes a per-image mean: a batched CUDA reduction may round differently in the last bit, which
    # can move a truncated pixel by one; every other op is exact
    assert (out.int() - ref.int()).abs().max().item() <= 1
    contrast = (ops == OP_NAMES.index("Contrast")).any(0)
    assert torch.equal(out[~contrast.cuda()], ref[~contrast.cuda()])
