"""The SSB datasets (cub, aircraft, scars, imagenet-ssb) on small files generated in the official on-disk formats.

Each class gets one training and one test image (8x8 JPEGs) whose colour encodes the class (red, green) and the
split (blue: 220 for a training image, 30 for a test image), so class mapping and train/test membership are
checked on the decoded pixels as well as on the labels.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from difair.config import DataConfig
from difair.data import get_dataset
from difair.data.ssb import ssb_splits
from difair.errors import DifairError

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "ssb_splits.json"

# The 100 variants of FGVC-Aircraft 2013b (data/variants.txt), here in sorted (numpy unique) order.
_VARIANTS = (
    "707-320 727-200 737-200 737-300 737-400 737-500 737-600 737-700 737-800 737-900 747-100 747-200 747-300 "
    "747-400 757-200 757-300 767-200 767-300 767-400 777-200 777-300 A300B4 A310 A318 A319 A320 A321 A330-200 "
    "A330-300 A340-200 A340-300 A340-500 A340-600 A380 ATR-42 ATR-72 An-12 BAE_146-200 BAE_146-300 BAE-125 "
    "Beechcraft_1900 Boeing_717 C-130 C-47 CRJ-200 CRJ-700 CRJ-900 Cessna_172 Cessna_208 Cessna_525 Cessna_560 "
    "Challenger_600 DC-10 DC-3 DC-6 DC-8 DC-9-30 DH-82 DHC-1 DHC-6 DHC-8-100 DHC-8-300 DR-400 Dornier_328 E-170 "
    "E-190 E-195 EMB-120 ERJ_135 ERJ_145 Embraer_Legacy_600 Eurofighter_Typhoon F-16A/B F/A-18 Falcon_2000 "
    "Falcon_900 Fokker_100 Fokker_50 Fokker_70 Global_Express Gulfstream_IV Gulfstream_V Hawk_T1 Il-76 L-1011 "
    "MD-11 MD-80 MD-87 MD-90 Metroliner Model_B200 PA-28 SR-20 Saab_2000 Saab_340 Spitfire Tornado Tu-134 "
    "Tu-154 Yak-42"
)
AIRCRAFT_VARIANTS = [v.replace("_", " ") for v in _VARIANTS.split(" ")]


def _jpeg(c: int, train: bool) -> bytes:
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    rgb[..., 0] = (c % 16) * 16 + 8
    rgb[..., 1] = (c // 16) * 16 + 8
    rgb[..., 2] = 220 if train else 30
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=100, subsampling=0)
    return buf.getvalue()


def _decode_class(images: torch.Tensor) -> np.ndarray:
    """Class index and train flag encoded in each (solid) image."""
    px = images.float().mean(dim=(2, 3)).numpy()
    return np.round((px[:, 0] - 8) / 16) + 16 * np.round((px[:, 1] - 8) / 16), px[:, 2] > 125


def write_cub(root: Path) -> Path:
    """``root/CUB_200_2011`` in Caltech's layout: 200 classes, ids 1..200; image 2k-1 training, 2k test."""
    folder = root / "CUB_200_2011"
    names = {c: f"{c:03d}.Bird_{c}" for c in range(1, 201)}
    names[29], names[30], names[151] = "029.American_Crow", "030.Fish_Crow", "151.Black_capped_Vireo"
    images, labels, split = [], [], []
    for c in range(1, 201):
        for train in (True, False):
            i = len(images) + 1
            rel = f"{names[c]}/{names[c].split('.')[1]}_{i:04d}.jpg"
            (folder / "images" / names[c]).mkdir(parents=True, exist_ok=True)
            (folder / "images" / rel).write_bytes(_jpeg(c - 1, train))
            images.append(f"{i} {rel}")
            labels.append(f"{i} {c}")
            split.append(f"{i} {int(train)}")
    (folder / "images.txt").write_text("\n".join(images) + "\n")
    (folder / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (folder / "train_test_split.txt").write_text("\n".join(split) + "\n")
    (folder / "classes.txt").write_text("\n".join(f"{c} {names[c]}" for c in range(1, 201)) + "\n")
    return folder


def write_aircraft(root: Path) -> Path:
    """``root/fgvc-aircraft-2013b/data`` in torchvision's layout; variants.txt in a shuffled line order."""
    data = root / "fgvc-aircraft-2013b" / "data"
    (data / "images").mkdir(parents=True)
    shuffled = list(np.random.default_rng(0).permutation(AIRCRAFT_VARIANTS))
    (data / "variants.txt").write_text("\n".join(shuffled) + "\n")
    for split, train in (("trainval", True), ("test", False)):
        lines = []
        for c, v in enumerate(AIRCRAFT_VARIANTS):
            image_id = f"{1000000 + 2 * c + int(train):07d}"
            (data / "images" / f"{image_id}.jpg").write_bytes(_jpeg(c, train))
            lines.append(f"{image_id} {v}")
        (data / f"images_variant_{split}.txt").write_text("\n".join(lines[::-1]) + "\n")
    return data.parent


def _annotations(fnames: list[str], classes: list[int]) -> np.ndarray:
    fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]
    arr = np.zeros((1, len(fnames)), dtype=[(f, "O") for f in fields])
    for i, (f, c) in enumerate(zip(fnames, classes, strict=True)):
        arr[0, i] = (np.uint8(1), np.uint8(1), np.uint8(7), np.uint8(7), np.uint8(c), f)
    return arr


def write_scars(root: Path) -> Path:
    """``root/stanford_cars`` in torchvision's layout: 196 classes, .mat classes 1..196, names car001..car196."""
    folder = root / "stanford_cars"
    (folder / "devkit").mkdir(parents=True)
    names = np.empty((1, 196), dtype=object)
    names[0, :] = [f"car{k:03d}" for k in range(1, 197)]
    scipy.io.savemat(folder / "devkit" / "cars_meta.mat", {"class_names": names})
    for split, mat, train in (
        ("cars_train", folder / "devkit" / "cars_train_annos.mat", True),
        ("cars_test", folder / "cars_test_annos_withlabels.mat", False),
    ):
        (folder / split).mkdir()
        fnames = [f"{k:05d}.jpg" for k in range(1, 197)]
        for k, f in enumerate(fnames, start=1):
            (folder / split / f).write_bytes(_jpeg(k - 1, train))
        scipy.io.savemat(mat, {"annotations": _annotations(fnames, list(range(1, 197)))})
    return folder


@pytest.fixture(scope="module")
def ssb_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ssb")
    write_cub(root)
    write_aircraft(root)
    write_scars(root)
    return root


def _load(name: str, root: Path, **kw) -> object:
    return get_dataset(DataConfig(name=name, root=str(root), image_size=8, balance="none", **kw))


def test_shipped_splits_are_the_reference_lists_verbatim() -> None:
    if not REFERENCE.is_file():
        pytest.skip(f"{REFERENCE} absent (the project's reference copy)")
    assert ssb_splits() == json.loads(REFERENCE.read_text())
    assert len(AIRCRAFT_VARIANTS) == 100 and sorted(AIRCRAFT_VARIANTS) == AIRCRAFT_VARIANTS


@pytest.mark.parametrize("name", ["cub", "aircraft", "scars"])
def test_class_mapping_difficulties_and_membership(ssb_root: Path, name: str) -> None:
    d = _load(name, ssb_root)
    lists = ssb_splits()[name]
    known, unknown = lists["known_classes"], lists["unknown_classes"]
    assert d.meta["known_source_classes"] == known
    # one training and one test image per class
    assert len(d.train_labels) == len(known) and d.n_known_test == len(known)
    assert d.n_unknown_test == sum(len(v) for v in unknown.values())
    # the decoded pixels carry the source class: training label i is known[i], and only training images train
    cls, is_train = _decode_class(d.train_images)
    assert is_train.all() and list(cls.astype(int)) == [known[i] for i in d.train_labels.tolist()]
    cls, is_train = _decode_class(d.test_images)
    assert not is_train.any() and (cls.astype(int) == d.test_source_labels.numpy()).all()
    k = d.test_labels >= 0
    assert [known[i] for i in d.test_labels[k].tolist()] == d.test_source_labels[k].tolist()
    # each difficulty's mask: all known test images plus exactly that difficulty's unknown classes
    masks = d.unknown_subset_masks()
    assert set(masks) == {"Easy", "Medium", "Hard", "Hard+Medium"}
    for diff in ("Easy", "Medium", "Hard"):
        m = masks[diff]
        assert bool(m[k].all())
        assert sorted(d.test_source_labels[m & ~k].tolist()) == sorted(unknown[diff])
    assert sorted(d.test_source_labels[masks["Hard+Medium"] & ~k].tolist()) == sorted(
        unknown["Hard"] + unknown["Medium"]
    )
    sizes = d.summary()["unknown_subsets"]
    assert {n: s["n_unknown"] for n, s in sizes.items() if n != "Hard+Medium"} == {
        diff: len(unknown[diff]) for diff in ("Easy", "Medium", "Hard")
    }


def test_cub_hand_checked_example(ssb_root: Path) -> None:
    d = _load("cub", ssb_root)
    # index = image_class_labels id - 1: index 150 (the first known) is class id 151
    assert d.class_names[0] == "151.Black_capped_Vireo"
    # the Hard pair (28, 29) of closed_set_open_set_pairs: American Crow known, Fish Crow unknown (Hard)
    assert [28, 29] in ssb_splits()["cub"]["closed_set_open_set_pairs"]["Hard"]
    assert d.class_names[ssb_splits()["cub"]["known_classes"].index(28)] == "029.American_Crow"
    assert d.unknown_class_names[29] == "030.Fish_Crow" and 29 in d.unknown_subsets["Hard"]


def test_aircraft_hand_checked_example(ssb_root: Path) -> None:
    d = _load("aircraft", ssb_root)
    # sorted variant names, not the (shuffled) variants.txt order torchvision labels by
    assert d.class_names[:2] == ["707-320", "727-200"]
    # Hard pair ([2, 3, 4, 5], [6, 7, 8, 9]): 737-200..500 known, 737-600..900 unknown (Hard)
    assert [[2, 3, 4, 5], [6, 7, 8, 9]] in ssb_splits()["aircraft"]["closed_set_open_set_pairs"]["Hard"]
    assert [d.unknown_class_names[c] for c in (2, 5, 6, 9)] == ["737-200", "737-500", "737-600", "737-900"]
    assert {6, 7, 8, 9} <= set(d.unknown_subsets["Hard"]) and "737-300" in d.class_names


def test_scars_hand_checked_example(ssb_root: Path) -> None:
    d = _load("scars", ssb_root)
    # index = .mat class - 1: the first known index, 1, is .mat class 2 (car002)
    assert ssb_splits()["scars"]["known_classes"][0] == 1 and d.class_names[0] == "car002"
    assert d.unknown_class_names[23] == "car024" and 23 in d.unknown_subsets["Hard"]


@pytest.mark.parametrize(
    "name, fragment, source",
    [
        (
            "cub",
            "CUB_200_2011/{images.txt, image_class_labels.txt, train_test_split.txt, images}",
            "caltech.edu",
        ),
        ("aircraft", "fgvc-aircraft-2013b/{data/variants.txt", "robots.ox.ac.uk"),
        ("scars", "stanford_cars/{devkit/cars_meta.mat, devkit/cars_train_annos.mat", "StanfordCars"),
        (
            "imagenet-ssb",
            "imagenet/{train,val}/<wnid>/* and imagenet21k/imagenet21k_val/<wnid>/*",
            "image-net.org",
        ),
    ],
)
def test_missing_files_give_one_line_naming_layout_and_source(
    tmp_path: Path, name: str, fragment: str, source: str
) -> None:
    with pytest.raises(DifairError) as e:
        _load(name, tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and fragment in msg and source in msg and "data.root" in msg


def test_one_missing_file_is_named(tmp_path: Path) -> None:
    write_cub(tmp_path)
    (tmp_path / "CUB_200_2011" / "train_test_split.txt").unlink()
    with pytest.raises(DifairError, match=r"\(missing train_test_split.txt\)"):
        _load("cub", tmp_path)


def test_ssb_has_one_split(ssb_root: Path) -> None:
    with pytest.raises(DifairError, match="one fixed split"):
        _load("cub", ssb_root, split=1)


def write_imagenet_ssb(root: Path, easy: list[str], hard: list[str]) -> list[str]:
    """ImageNet-1K train/val ImageFolders (1,000 fake wnids, one image each) and a few ImageNet-21K classes."""
    wnids = [f"n{10000000 + 7 * i:08d}" for i in range(1000)][::-1]  # folder creation order is not sorted
    for split, train in (("train", True), ("val", False)):
        data = _jpeg(0, train)
        for w in wnids:
            (root / "imagenet" / split / w).mkdir(parents=True)
            (root / "imagenet" / split / w / f"{w}_1.JPEG").write_bytes(data)
    for w in easy + hard:
        (root / "imagenet21k" / "imagenet21k_val" / w).mkdir(parents=True)
        for j in range(2):
            (root / "imagenet21k" / "imagenet21k_val" / w / f"{w}_{j}.JPEG").write_bytes(_jpeg(5, False))
    return sorted(wnids)


def test_imagenet_ssb_on_generated_folders(tmp_path: Path) -> None:
    lists = ssb_splits()["imagenet_winter21"]
    easy, hard = lists["easy_i21k_classes"][:3], lists["hard_i21k_classes"][:2]
    in1k = write_imagenet_ssb(tmp_path, easy, hard)
    d = _load("imagenet-ssb", tmp_path)
    assert d.class_names == in1k and d.num_classes == 1000
    assert len(d.train_labels) == 1000 and d.n_known_test == 1000 and d.n_unknown_test == 10
    u = d.test_labels < 0
    names = [d.unknown_class_names[s] for s in d.test_source_labels[u].tolist()]
    assert sorted(set(names)) == sorted(easy + hard)
    masks = d.unknown_subset_masks()
    assert set(masks) == {"Easy", "Hard"}
    easy_names = {d.unknown_class_names[s] for s in d.test_source_labels[masks["Easy"] & u].tolist()}
    hard_names = {d.unknown_class_names[s] for s in d.test_source_labels[masks["Hard"] & u].tolist()}
    assert easy_names == set(easy) and hard_names == set(hard)
    assert d.meta["imagenet_ssb"]["missing_unknown_wnids"] == 1000 + 980 - 5


def test_imagenet_val_left_flat_is_refused_before_any_decoding(tmp_path: Path, monkeypatch) -> None:
    import difair.data.imagenet_ssb as imagenet_ssb

    decoded = []
    monkeypatch.setattr(imagenet_ssb, "cached_images", lambda files, **kw: decoded.append(kw["label"]))
    lists = ssb_splits()["imagenet_winter21"]
    in1k = write_imagenet_ssb(tmp_path, lists["easy_i21k_classes"][:1], [])
    val = tmp_path / "imagenet" / "val"
    for w in in1k[5:]:  # ILSVRC2012 ships its val images in one flat folder
        (val / w / f"{w}_1.JPEG").rename(val / f"{w}_1.JPEG")
        (val / w).rmdir()
    with pytest.raises(
        DifairError, match=rf"val has no images in a class folder for 995 of the 1000 .*first: {in1k[5]}"
    ):
        _load("imagenet-ssb", tmp_path)
    assert decoded == []  # not after ImageNet-1K train's hours of decoding


def test_one_epoch_train_and_eval_on_cub_reports_every_difficulty(ssb_root: Path, tmp_path: Path) -> None:
    from difair.engine.evaluate import evaluate_run_dir
    from difair.engine.fit import fit
    from tiny import tiny_config

    extra = [f"data.root={ssb_root}", "data.name=cub", "data.image_size=8", "data.balance=none"]
    results = fit(tiny_config("ce", epochs=1, extra=extra), tmp_path / "run", show_progress=False)
    unknown = ssb_splits()["cub"]["unknown_classes"]
    per = results["unknown_subsets"]
    assert set(per) == {"Easy", "Medium", "Hard", "Hard+Medium"}
    for diff in ("Easy", "Medium", "Hard"):
        assert per[diff]["n_unknown"] == len(unknown[diff])  # one test image per class
        assert 0 <= per[diff]["auroc"] <= 1 and set(per[diff]["scores"]) == {"msp", "mls"}
        assert per[diff]["closed_set_accuracy"] == results["closed_set_accuracy"]  # the same known images
    assert per["Hard+Medium"]["n_unknown"] == len(unknown["Hard"]) + len(unknown["Medium"])
    assert results["n_unknown"] == 100 and results["data"]["unknown_subsets"]["Easy"]["classes"] == 32
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["unknown_subsets"] == per
    assert evaluate_run_dir(tmp_path / "run")["unknown_subsets"] == per  # difair eval recomputes them


def test_subset_metrics_known_answer() -> None:
    """Two known test images, an Easy unknown scored below them and a Hard unknown above: Easy AUROC 1, Hard 0."""
    from difair.data.base import OSRData
    from difair.engine.evaluate import subset_metrics

    img = torch.zeros((4, 3, 4, 4), dtype=torch.uint8)
    d = OSRData(
        name="t",
        split=0,
        class_names=["a", "b"],
        train_images=img[:2],
        train_labels=torch.tensor([0, 1]),
        test_images=img,
        test_labels=torch.tensor([0, 1, -1, -1]),
        mean=[0.0] * 3,
        std=[1.0] * 3,
        test_source_labels=torch.tensor([0, 1, 7, 9]),
        unknown_subsets={"Easy": [7], "Hard": [9], "Empty": [5]},
    )
    result = {"preds": torch.tensor([0, 0, 0, 0]), "scores": {"s": torch.tensor([0.8, 0.6, 0.1, 0.9])}}
    out = subset_metrics(result, d.test_labels, d.unknown_subset_masks(), "s")
    assert out["Easy"]["auroc"] == 1.0 and out["Hard"]["auroc"] == 0.0
    assert out["Easy"]["closed_set_accuracy"] == 0.5 and out["Easy"]["n_unknown"] == 1
    assert out["Empty"] == {"n_unknown": 0}
    with pytest.raises(ValueError, match="test_source_labels"):
        OSRData(**{**d.__dict__, "test_source_labels": None})


@pytest.mark.parametrize(
    "line, fragment", [("1 abc", "is not 'ID VALUE'"), ("1 201", "names classes outside 1..200")]
)
def test_malformed_cub_metadata_is_one_line(tmp_path: Path, line: str, fragment: str) -> None:
    from difair.data.fgvc import cub_pools

    folder = write_cub(tmp_path)
    labels = (folder / "image_class_labels.txt").read_text().splitlines()
    (folder / "image_class_labels.txt").write_text("\n".join([line, *labels[1:]]) + "\n")
    with pytest.raises(DifairError, match=fragment) as err:
        cub_pools(folder)
    assert "\n" not in str(err.value)


def test_an_aircraft_variant_missing_from_variants_txt_is_named(tmp_path: Path) -> None:
    data = write_aircraft(tmp_path) / "data"
    gone = AIRCRAFT_VARIANTS[4]
    kept = [v for v in (data / "variants.txt").read_text().splitlines() if v != gone]
    (data / "variants.txt").write_text("\n".join(kept) + "\n")
    with pytest.raises(
        DifairError, match=rf"variant '{gone}' of images_variant_trainval.txt is not in variants.txt"
    ):
        _load("aircraft", tmp_path)


def test_a_partial_cub_is_refused_before_any_decode(tmp_path: Path) -> None:
    folder = write_cub(tmp_path)
    split = (folder / "train_test_split.txt").read_text().replace("\n301 1\n", "\n301 0\n")  # class 151's one
    (folder / "train_test_split.txt").write_text(
        split
    )  # training image is now a test image: known 150 has none
    with pytest.raises(
        DifairError, match=r"is incomplete: class 150 \(151.Black_capped_Vireo\) .* no training image"
    ):
        _load("cub", tmp_path)
    assert not (folder / ".difair-cache").exists()  # nothing decoded for a split that cannot be built
