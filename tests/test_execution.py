"""precision=auto and channels_last=auto: the rules on every branch, the probe, its cache, the records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from difair.config import FAST_PATH, TrainConfig, apply_overrides
from difair.engine import execution as X
from difair.engine import hardware as H
from difair.engine.hardware import DeviceInfo
from difair.errors import DifairError
from tiny import tiny_config

AVX2 = frozenset({"sse2", "avx", "avx2", "fma"})
ZEN5 = frozenset({"sse2", "avx2", "avx512f", "avx512_bf16"})
SPR = frozenset({"sse2", "avx2", "avx512f", "amx_tile", "amx_bf16"})


@pytest.mark.parametrize(
    "dev, expected",
    [
        (DeviceInfo("cuda", (9, 0), None, "H100"), "bf16-mixed"),
        (DeviceInfo("cuda", (8, 0), None, "A100"), "bf16-mixed"),
        (DeviceInfo("cuda", (7, 5), None, "T4"), "16-mixed"),
        (DeviceInfo("cuda", (6, 1), None, "P40"), "16-mixed"),
        (DeviceInfo("cpu", None, ZEN5), "bf16-mixed"),
        (DeviceInfo("cpu", None, SPR), "bf16-mixed"),
        (DeviceInfo("cpu", None, AVX2), "32-true"),
        (DeviceInfo("cpu", None, frozenset({"avx512f"})), "32-true"),  # AVX-512 without bf16: emulated
        (DeviceInfo("cpu", None, None), "32-true"),  # ARM or unknown: no flags line
        (DeviceInfo("mps"), "32-true"),
        # ONEDNN_MAX_CPU_ISA below AVX512_CORE_BF16: oneDNN emulates bf16 although the flags say native
        (DeviceInfo("cpu", None, SPR, isa_cap="AVX2"), "32-true"),
        (DeviceInfo("cpu", None, ZEN5, isa_cap="AVX512_CORE"), "32-true"),
        (DeviceInfo("cpu", None, ZEN5, isa_cap="AVX512_CORE_BF16"), "bf16-mixed"),
        (DeviceInfo("cpu", None, SPR, isa_cap="AVX10_1_512_AMX"), "bf16-mixed"),
    ],
)
def test_the_precision_rule_on_every_branch(dev, expected):
    precision, why = H.auto_precision(dev)
    assert precision == expected
    assert why  # a reason is always given


def test_the_onednn_isa_cap_is_read_from_the_environment_and_named_in_the_reason(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    assert H.onednn_isa_cap() == "AVX2"
    assert H.native_bf16_cpu(SPR) is False
    assert H.device_info("cpu").isa_cap == "AVX2"
    precision, why = H.auto_precision(DeviceInfo("cpu", None, SPR, isa_cap=H.onednn_isa_cap()))
    assert precision == "32-true" and "ONEDNN_MAX_CPU_ISA=AVX2" in why
    peak, how = H.cpu_peak_gflops("32-true", flags=SPR, cores=2, ghz=2.0)
    assert peak == 2 * 2 * 8 * 2 * 2.0 and "ONEDNN_MAX_CPU_ISA=AVX2" in how  # AVX2 lanes, not AVX-512's
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "DEFAULT")
    assert H.onednn_isa_cap() is None and H.native_bf16_cpu(SPR) is True
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert H.onednn_isa_cap() is None and H.native_bf16_cpu(AVX2) is False


def test_auto_precision_is_resolved_and_recorded_user_values_are_kept():
    cfg = tiny_config(extra=["precision=auto"]).resolve()
    out = X.resolve_precision(cfg, DeviceInfo("cpu", None, AVX2))
    assert out.precision == "32-true" and out.auto.precision.startswith("auto -> 32-true")
    cfg = tiny_config(extra=["precision=auto"]).resolve()
    assert X.resolve_precision(cfg, DeviceInfo("cpu", None, SPR)).precision == "bf16-mixed"
    explicit = tiny_config(extra=["precision=bf16-mixed"]).resolve()
    out = X.resolve_precision(explicit, DeviceInfo("cpu", None, AVX2))
    assert out.precision == "bf16-mixed" and out.auto.precision == ""


@pytest.mark.parametrize(
    "device, devices, expected", [("cuda", 1, True), ("mps", 1, False), ("cpu", 2, False)]
)
def test_channels_last_rules_without_a_probe(device, devices, expected):
    cfg = tiny_config(extra=["channels_last=auto", f"devices={devices}"]).resolve()

    def no_probe(*a):
        raise AssertionError("the probe must not run here")

    out = X.resolve_channels_last(cfg, (1, 8, 8), 6, device, timer=no_probe)
    assert out.channels_last is expected and out.auto.channels_last.startswith("auto -> ")


@pytest.mark.parametrize(
    "cl_ms, contiguous_ms, expected", [(50, 100, True), (100, 50, False), (99, 100, False)]
)
def test_the_cpu_probe_picks_the_faster_format_and_caches_it(
    tmp_path, monkeypatch, cl_ms, contiguous_ms, expected
):
    monkeypatch.setenv("DIFAIR_CACHE", str(tmp_path))
    calls = []

    def timer(cfg, shape, classes):
        calls.append(shape)
        return {True: [cl_ms / 1e3] * 4, False: [contiguous_ms / 1e3] * 4}

    cfg = tiny_config(extra=["channels_last=auto"]).resolve()
    out = X.resolve_channels_last(cfg, (1, 8, 8), 6, "cpu", timer=timer)
    assert out.channels_last is expected  # within the 3 % margin the default contiguous format stays
    assert calls == [(1, 8, 8)]
    cache = json.loads((tmp_path / X.PROBE_FILE).read_text())
    assert [v["channels_last"] for v in cache.values()] == [expected]
    # a second run on the same machine and workload reads the cache: no timing
    again = X.resolve_channels_last(
        tiny_config(extra=["channels_last=auto"]).resolve(), (1, 8, 8), 6, "cpu", timer=None
    )
    assert again.channels_last is expected and again.auto.channels_last.endswith("(cached)")
    assert len(calls) == 1
    # another workload (image size) is probed anew
    X.resolve_channels_last(
        tiny_config(extra=["channels_last=auto"]).resolve(), (1, 16, 16), 6, "cpu", timer=timer
    )
    assert len(calls) == 2


def test_an_explicit_memory_format_is_never_probed():
    for value in (True, False):
        cfg = tiny_config(extra=[f"channels_last={str(value).lower()}"]).resolve()
        out = X.resolve_channels_last(cfg, (1, 8, 8), 6, "cpu", timer=lambda *a: 1 / 0)
        assert out.channels_last is value and out.auto.channels_last == ""


def test_a_corrupt_cache_is_probed_again(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFAIR_CACHE", str(tmp_path))
    (tmp_path / X.PROBE_FILE).write_text("{not json")
    cfg = tiny_config(extra=["channels_last=auto"]).resolve()
    out = X.resolve_channels_last(cfg, (1, 8, 8), 6, "cpu", timer=lambda *a: {True: [0.01], False: [0.01]})
    assert out.channels_last is False
    assert json.loads((tmp_path / X.PROBE_FILE).read_text())


def test_the_real_step_timer_runs_and_leaves_the_global_rng_alone():
    cfg = tiny_config(extra=["batch_size=8"]).resolve()
    state = torch.random.get_rng_state()
    times = X.time_training_steps(cfg, (1, 8, 8), 6)
    assert sorted(times) == [False, True]
    assert all(len(v) == X.PROBE_STEPS and all(t > 0 for t in v) for v in times.values())
    assert torch.equal(torch.random.get_rng_state(), state)


def test_the_digest_of_a_request_equals_that_of_the_run_it_made():
    request = tiny_config(extra=["precision=auto", "channels_last=auto"]).resolve()
    made = X.resolve_channels_last(
        X.resolve_precision(
            tiny_config(extra=["precision=auto", "channels_last=auto"]).resolve(),
            DeviceInfo("cpu", None, AVX2),
        ),
        (1, 8, 8),
        6,
        "cuda",
    )
    assert (made.precision, made.channels_last) == ("32-true", True)
    assert made.digest() == request.digest()
    # ... and differs from a run where the user chose those values
    assert (
        tiny_config(extra=["precision=32-true", "channels_last=true"]).resolve().digest() != request.digest()
    )
    # a saved, resolved config reads back with its record
    again = TrainConfig.from_yaml(made.to_yaml())
    assert again.auto == made.auto and again.digest() == request.digest()


def test_bad_channels_last_and_unresolved_memory_format_are_refused():
    with pytest.raises(DifairError, match="channels_last takes true, false or auto"):
        tiny_config(extra=["channels_last=sometimes"]).resolve()
    from difair.engine.loop import memory_format

    with pytest.raises(ValueError, match="resolved first"):
        memory_format(tiny_config(extra=["channels_last=auto"]).resolve())


def test_fast_path_asks_for_auto():
    cfg = TrainConfig.from_dict(apply_overrides(TrainConfig().to_dict(), list(FAST_PATH)))
    assert cfg.precision == "auto" and cfg.channels_last == "auto"


def test_cpu_peak_from_flags_cores_and_clock():
    peak, how = H.cpu_peak_gflops("32-true", AVX2, cores=2, ghz=2.45)
    assert peak == pytest.approx(
        2 * 2 * 8 * 2 * 2.45
    )  # 156.8 GFLOP/s: 2 cores x 2 FMA x 8 lanes x 2 flop x 2.45 GHz
    assert "avx2" in how
    assert H.cpu_peak_gflops("32-true", ZEN5, cores=2, ghz=2.0)[0] == pytest.approx(2 * 2 * 16 * 2 * 2.0)
    assert H.cpu_peak_gflops("bf16-mixed", ZEN5, cores=2, ghz=2.0)[0] == pytest.approx(2 * 2 * 32 * 2 * 2.0)
    assert H.cpu_peak_gflops("32-true", frozenset({"neon"}), cores=2, ghz=2.0) is None


def test_zen4_counts_avx512_at_256_bits_and_zen5_at_512(tmp_path: Path):
    zen4 = ("AuthenticAMD", 25)
    assert H.cpu_peak_gflops("32-true", ZEN5, cores=2, ghz=2.0, vendor_family=zen4)[0] == pytest.approx(
        2 * 2 * 8 * 2 * 2.0
    )
    peak, how = H.cpu_peak_gflops("bf16-mixed", ZEN5, cores=2, ghz=2.0, vendor_family=zen4)
    assert peak == pytest.approx(2 * 2 * 16 * 2 * 2.0) and "256-bit units" in how
    zen5 = ("AuthenticAMD", 26)
    assert H.cpu_peak_gflops("bf16-mixed", ZEN5, cores=2, ghz=2.0, vendor_family=zen5)[0] == pytest.approx(
        2 * 2 * 32 * 2 * 2.0
    )
    # Zen 3 is family 25 too, without AVX-512: its AVX2 peak is unchanged
    assert H.cpu_peak_gflops("32-true", AVX2, cores=2, ghz=2.0, vendor_family=zen4)[0] == pytest.approx(
        2 * 2 * 8 * 2 * 2.0
    )
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n")
    assert H.cpu_vendor_family(str(info)) == zen4
    arm = tmp_path / "cpuinfo-arm"  # a new path: the function caches per file, as cpu_flags does
    arm.write_text("processor\t: 0\nmodel name\t: ARM\n")
    assert H.cpu_vendor_family(str(arm)) is None


def test_cpu_peak_counts_amx_tiles_for_bf16_unless_onednn_is_kept_below_them(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    peak, how = H.cpu_peak_gflops("bf16-mixed", SPR, cores=2, ghz=2.0)
    assert peak == pytest.approx(2 * 1024 * 2.0) and "AMX" in how  # 8x the AVX512-BF16 dot-product peak
    assert H.cpu_peak_gflops("32-true", SPR, cores=2, ghz=2.0)[0] == pytest.approx(2 * 2 * 16 * 2 * 2.0)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")  # bf16 dot products, no tiles
    peak, how = H.cpu_peak_gflops("bf16-mixed", SPR, cores=2, ghz=2.0)
    assert peak == pytest.approx(2 * 2 * 32 * 2 * 2.0) and "AMX" not in how
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # bf16 emulated: the fp32 AVX2 peak
    assert H.cpu_peak_gflops("bf16-mixed", SPR, cores=2, ghz=2.0)[0] == pytest.approx(2 * 2 * 8 * 2 * 2.0)


def test_nominal_clock_from_cpuinfo(tmp_path: Path):
    f = tmp_path / "cpuinfo"
    f.write_text("model name\t: Intel(R) Xeon(R) Platinum 8480C @ 2.00GHz\ncpu MHz\t\t: 3800.0\n")
    assert H._nominal_ghz(str(f)) == pytest.approx(2.0)
    f.write_text("model name\t: AMD EPYC\ncpu MHz\t\t: 2445.402\nbogomips\t: 4890.80\n")
    assert H._nominal_ghz(str(f)) == pytest.approx(2.445402)
    f.write_text("model name\t: AMD EPYC\nbogomips\t: 4890.80\n")
    assert H._nominal_ghz(str(f)) == pytest.approx(2.4454)


def test_evaluation_outputs_are_fp32_even_under_autocast():
    from difair.engine.build import build_model
    from difair.engine.evaluate import collect_outputs

    torch.manual_seed(0)
    cfg = tiny_config().resolve()
    model, _ = build_model(cfg, 6, 1, [0.5], [0.25])
    model.eval()
    images = torch.randint(0, 256, (10, 1, 8, 8), dtype=torch.uint8)
    with torch.no_grad():
        fp32 = model(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(images).float()
            inside = collect_outputs(model, images, 4, torch.device("cpu"))  # a caller under autocast
    assert not torch.equal(bf16, fp32)  # autocast would round: the test can tell the two apart
    assert inside.dtype == torch.float32 and torch.equal(inside, fp32)
    # a model whose weights are bf16 (precision=bf16-true) is evaluated through an fp32 copy
    low = build_model(cfg, 6, 1, [0.5], [0.25])[0].eval()
    low.load_state_dict(model.state_dict())
    low = low.to(torch.bfloat16)
    out = collect_outputs(low, images, 4, torch.device("cpu"))
    assert (
        out.dtype == torch.float32 and next(low.parameters()).dtype == torch.bfloat16
    )  # the model is untouched
