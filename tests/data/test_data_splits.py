"""Split tables (both families), label remapping and the registry's names."""

from __future__ import annotations

import numpy as np
import pytest

from difair.config import DataConfig
from difair.data.base import select_known
from difair.data.registry import available_datasets, check_dataset_name, get_dataset
from difair.data.split_lists import CIFAR_PLUS_UNKNOWN, NEAL_CIFAR10_UNKNOWN, NEAL_KNOWN
from difair.data.splits import get_cifar_plus_unknown, get_known_classes
from difair.errors import DifairError


def test_vaze_lists_verbatim() -> None:
    assert get_known_classes("mnist", 0) == [2, 4, 5, 9, 8, 3]
    assert get_known_classes("svhn", 4) == [4, 9, 2, 7, 1, 0]
    assert get_known_classes("cifar10", 1) == [7, 6, 4, 9, 0, 1]
    assert get_known_classes("cifar+10", 0) == [0, 1, 8, 9]  # the default: the vehicles
    assert get_known_classes("cifar+10", 0, cifar_plus_known="split") == [4, 7, 9, 1]
    assert get_known_classes("cifar+50", 2, cifar_plus_known="vehicles") == [0, 1, 8, 9]
    assert get_known_classes("tinyimagenet", 0)[:3] == [108, 147, 17]
    for n in (10, 50):
        for split in range(5):
            assert len(set(get_cifar_plus_unknown(n, split))) == n
    # each CIFAR+50 list ends with the CIFAR+10 list of the same split
    assert all(CIFAR_PLUS_UNKNOWN[50][s][-10:] == CIFAR_PLUS_UNKNOWN[10][s] for s in range(5))


def test_neal_family() -> None:
    for ds in ("mnist", "svhn", "cifar10"):
        for split, unknown in enumerate(NEAL_CIFAR10_UNKNOWN):
            known = get_known_classes(ds, split, family="neal")
            assert known == sorted(set(range(10)) - set(unknown))
    assert get_known_classes("mnist", 0, family="neal") == [0, 1, 2, 4, 5, 9]  # CAC MNIST/class_splits/0.json
    assert get_known_classes("cifar+10", 2, family="neal") == [0, 1, 8, 9]
    assert get_cifar_plus_unknown(10, 0, family="neal") == [31, 65, 45, 98, 77, 93, 34, 63, 26, 44]
    for split in range(5):
        tin = NEAL_KNOWN["tinyimagenet"][split]
        assert len(set(tin)) == 20 and all(0 <= c < 200 for c in tin)
    with pytest.raises(DifairError, match="no lists for 'cifar\\+50'.*split_family=vaze"):
        get_cifar_plus_unknown(50, 0, family="neal")
    with pytest.raises(DifairError, match="unknown split family"):
        get_known_classes("mnist", 0, family="arpl")
    with pytest.raises(DifairError, match="out of range"):
        get_known_classes("mnist", 5)


def test_remap_in_list_order() -> None:
    labels = np.array([9, 2, 3, 2, 7, 4, 8, 5])
    mask, remapped = select_known(labels, [2, 4, 5, 9, 8, 3])
    assert mask.tolist() == [True, True, True, True, False, True, True, True]
    assert remapped.tolist() == [3, 0, 5, 0, 1, 4, 2]


def test_registry_names() -> None:
    names = available_datasets()
    for n in ("mnist", "svhn", "cifar10", "cifar+10", "cifar+50", "tinyimagenet", "folder:PATH"):
        assert n in names
    assert "folder" not in names
    check_dataset_name("folder:/x")
    with pytest.raises(DifairError, match="unknown dataset 'folder'"):
        check_dataset_name("folder")
    with pytest.raises(DifairError, match="unknown dataset 'folder'"):
        get_dataset(DataConfig(name="folder"))
    with pytest.raises(DifairError, match="unknown dataset 'cifar100'"):
        get_dataset(DataConfig(name="cifar100"))


def test_each_split_family_has_its_lists_and_no_other_name_is_one() -> None:
    from difair.config import SPLIT_FAMILIES
    from difair.data.split_lists import CIFAR_PLUS_UNKNOWN_LISTS, KNOWN_LISTS

    assert tuple(KNOWN_LISTS) == SPLIT_FAMILIES and tuple(CIFAR_PLUS_UNKNOWN_LISTS) == SPLIT_FAMILIES
    for bad in (
        lambda: get_known_classes("mnist", 0, family="osrci"),
        lambda: get_cifar_plus_unknown(10, 0, "x"),
    ):
        with pytest.raises(DifairError, match="unknown split family"):
            bad()


def test_the_unknown_digits_are_the_complement_of_the_known() -> None:
    from difair.data.splits import get_unknown_digits

    assert get_unknown_digits("mnist", 0) == [0, 1, 6, 7]  # known [2, 4, 5, 9, 8, 3]
    assert get_unknown_digits("cifar10", 0, family="neal") == [3, 6, 7, 8]  # CAC's "Unknown" of split 0
