"""`dface-jax plan`: slice names, the batch search, XLA's unpriced ops, the one-line
refusal without libtpu, and (slow) the command compiling tiny configs for a v5e:2x2 slice."""

import importlib.util
import os
import re
import sys

import pytest

from dface_jax.plan import compile as compile_lib, search, topologies


def test_slice_names_give_chips_and_libtpu_topologies():
    v5e = topologies.parse_slice("v5e-32")
    assert (v5e.topology, v5e.chips, v5e.chip.hbm_bytes) == ("v5e:4x8", 32, 16 * 2 ** 30)
    v4 = topologies.parse_slice("v4-32")  # v4 names count TensorCores: 16 chips
    assert (v4.topology, v4.chips, v4.chip.chip_config) == ("v4:2x2x4", 16, "megacore")
    assert topologies.parse_slice("v5e:2x2").chips == 4
    assert topologies.parse_slice("v5p-8").chip.hbm_bytes == 95 * 2 ** 30
    assert topologies.parse_slice("v6e-1").chips_per_host_bounds == (1, 1, 1)
    for bad in ("v7-8", "v5e-3", "v4:2x2", "tpu"):
        with pytest.raises(topologies.TopologyError):
            topologies.parse_slice(bad)


def test_batch_search_finds_the_limit_of_an_affine_memory_within_its_budget():
    capacity = 1000
    calls = []

    def memory(batch):  # 100 fixed + 30 per example: the limit is 30 per device
        calls.append(batch)
        return 100 + 30 * batch

    result = search.largest_fitting_batch(memory, capacity, 2, max_compiles=3,
                                          known={2: memory(2)})
    assert result.largest_fit in (28, 29, 30) and len(calls) - 1 <= 3
    assert result.predicted_limit == 30
    assert all(ok == (value <= capacity) for _, value, ok in result.tried)
    # A start that does not fit halves down to one that does.
    down = search.largest_fitting_batch(memory, capacity, 64, max_compiles=4)
    assert down.largest_fit == 16 and down.smallest_miss == 32
    # A size whose arguments alone exceed the memory is refused without compiling.
    calls.clear()
    refused = search.largest_fitting_batch(memory, capacity, 40, max_compiles=0,
                                           floor_bytes=lambda b: 30 * b)
    assert calls == [] and refused.largest_fit is None and refused.tried[0] == (40, None, False)


def test_unpriced_custom_calls_are_counted_and_added_back():
    hlo = ('%a = f32[4] custom-call(%x), custom_call_target="ConcatBitcast"\n'
           '%b = f32[4] custom-call(%y), custom_call_target="ConcatBitcast"\n'
           '%c = f32[4] custom-call(%z), custom_call_target="AllocateBuffer"\n')
    assert compile_lib.count_unpriced_ops(hlo) == 2
    figures = compile_lib.Figures(10, 4, 4, 20, 6, 1e9, 1e6, -1.995, 2, 1.0)
    assert figures.seconds == pytest.approx(0.005)
    assert figures.device_bytes == 36 and figures.fits(36) and not figures.fits(35)
    assert compile_lib.Figures(0, 0, 0, 0, 0, 0.0, 0.0, -3.0, 2, 0.0).seconds is None


def test_without_libtpu_the_command_says_how_to_install_it_in_one_line(monkeypatch, capsys):
    from dface_jax import cli

    monkeypatch.setitem(sys.modules, "libtpu", None)  # `import libtpu` now raises ImportError
    assert cli.main(["plan", "--topology", "v5e:2x2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "libtpu" in err[0] and 'pip install -e ".[tpu-aot]"' in err[0]


def test_plan_refuses_unknown_names_in_one_line(capsys):
    from dface_jax import cli

    assert cli.main(["plan", "--topology", "v9x-8"]) == 2
    assert "unknown TPU slice" in capsys.readouterr().err
    assert cli.main(["plan", "--topology", "v5e:2x2", "--programs", "eval"]) == 2


def _number(pattern, text):
    match = re.search(pattern, text)
    assert match, (pattern, text)
    return float(match.group(1).replace(",", ""))


def _bytes(text):
    value, unit = text.split()
    return float(value) * {"MiB": 2 ** 20, "GiB": 2 ** 30}[unit]


@pytest.mark.slow  # compiles the tiny pretraining update 3x and the tiny LOSO sweep twice: ~4 min
def test_plan_command_on_a_v5e_2x2_slice(capsys):
    if importlib.util.find_spec("libtpu") is None:
        if os.environ.get("CI"):
            pytest.fail('CI must install libtpu: .ci/run installs ".[test,tpu-aot]"')
        pytest.skip('needs libtpu: pip install -e ".[test,tpu-aot]"')
    from dface_jax import cli

    assert cli.main(["plan", "--topology", "v5e:2x2", "--pretrain-config",
                     "pretrain_synthetic.py:tiny", "--loso-config", "loso_composite.py:tiny",
                     "--search-compiles", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("not a measurement") >= 7
    pretrain, loso_one, loso_four = out.split("LOSO sweep")
    hbm = 16 * 2 ** 30
    for block in (pretrain, loso_one, loso_four):
        total = _bytes(re.search(r"total ([\d.]+ [MG]iB) of 16.00 GiB HBM: fits", block).group(1))
        assert 0 < total < hbm
        assert _number(r"FLOPs per step per chip[^:]*: ([\d.e+]+)", block) > 0
        assert _number(r"step time: ([\d.]+) ms", block) > 0
    assert _number(r"examples/s: ([\d,]+)", pretrain) > 0
    assert _number(r"20 steps: ([\d.]+) ms", pretrain) > 0
    assert re.search(r"largest global batch that fits: \d+", pretrain)
    assert "68 folds on 1 chip(s)" in loso_one and "17 folds per chip" in loso_four
    assert _number(r"2 epochs: ([\d.]+) (?:ms|s)", loso_four) > 0
    # A batch far beyond the chip is reported as not fitting (and not compiled).
    assert cli.main(["plan", "--topology", "v5e:2x2", "--pretrain-config",
                     "pretrain_synthetic.py:tiny", "--programs", "pretrain",
                     "--batch-size", str(2 ** 23), "--search-compiles", "0"]) == 0
    assert "DOES NOT FIT" in capsys.readouterr().out
