"""The effective configuration (issue 8, item 1): frozen, documented configs; presets QUICK and
TINY applied before the user's values, which always win; validation of the whole effective
configuration (relations name the key the user set; memory estimate against this machine's
memory) before anything is written; config.json with the configuration that ran, the keys set,
the preset and the provenance; `gradflow describe` and `gradflow run --dry-run`. No experiment
runs here: everything is validation (fast)."""

import dataclasses
import json
import typing

import pytest
from cli_helpers import exited, invoke, one_error_line

import gradflow as gf
from gradflow.experiments import (
    PRESETS,
    REGISTRY,
    describe,
    effective_config,
    make_config,
)
from gradflow.experiments._effective import from_record
from gradflow.runs import provenance

# gradflow's own experiments (test-only ones, e.g. the sweep tests' toy, register themselves
# when their test module is collected and are not reachable from the CLI).
NAMES = sorted(n for n, e in REGISTRY.items() if e.config_cls.__module__.startswith("gradflow."))


def config_cls(name):
    return REGISTRY[name].config_cls


# ---------------------------------------------------------------------------------------------
# the config classes


@pytest.mark.parametrize("name", NAMES)
def test_every_field_is_typed_defaulted_and_documented(name):
    cls = config_cls(name)
    assert cls.__dataclass_params__.frozen
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        assert f.name in hints, f.name
        assert f.default is not dataclasses.MISSING, f.name  # immutable defaults, no factories
        meaning = f.metadata.get("meaning", "")
        assert meaning.strip() and "\n" not in meaning, f.name
    with pytest.raises(dataclasses.FrozenInstanceError):
        cls().seed = 1


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_is_valid_and_only_sets_fields(name, preset):
    cls = config_cls(name)
    fields = {f.name for f in dataclasses.fields(cls)}
    assert set(cls.preset_values(preset)) <= fields
    effective = effective_config(name, {"preset": preset})
    assert effective.preset == preset and effective.user_keys == ()
    declared = {"full": {}, "quick": cls.QUICK, "tiny": cls.TINY}[preset]
    assert cls.preset_values(preset) == declared
    for key, value in declared.items():
        assert getattr(effective.config, key) == value


@pytest.mark.parametrize("name", NAMES)
def test_tiny_is_smaller_than_quick(name):
    cls = config_cls(name)
    assert cls.TINY, "every experiment has a TINY preset"
    tiny = make_config(name, {"preset": "tiny"})
    quick = make_config(name, {"preset": "quick"})
    estimate = tiny.estimated_bytes()
    if estimate is not None:
        assert estimate <= quick.estimated_bytes()


# ---------------------------------------------------------------------------------------------
# the user's values win over the preset


def test_values_set_win_over_the_quick_preset():
    # deep-linear quick ran dim 4 whatever was set, and n=1e9 ran n = 64
    config = make_config("deep-linear", {"quick": "true", "dim": "8", "n": "512"})
    assert config.dim == 8 and config.n == 512
    assert config.saves == 300 and config.singular_values == (3.0, 1.8, 1.0, 0.6)
    # conditional-ot quick ran particles [1, 16] and max_steps 10000 whatever was set
    config = make_config("conditional-ot", {"quick": "true", "particles": "2", "max_steps": "500"})
    assert config.particles == (2,) and config.max_steps == 500 and config.t1 == 3000.0


def test_quick_true_is_an_alias_of_preset_quick():
    assert effective_config("resnet-pl", {"quick": "true"}) == effective_config(
        "resnet-pl", {"preset": "quick"}
    )
    assert effective_config("resnet-pl", {"quick": "false"}).preset == "full"
    for overrides in ({"quick": "true", "preset": "tiny"}, {"quick": "false", "preset": "quick"}):
        with pytest.raises(gf.ConfigError) as info:
            effective_config("resnet-pl", overrides)
        assert info.value.field == "quick"


def test_sources_say_where_each_value_comes_from():
    effective = effective_config("deep-linear", {"preset": "quick", "depth": "4"})
    sources = effective.sources()
    assert sources["depth"] == "set" and sources["dim"] == "preset"
    assert sources["rtol"] == "default"
    assert effective_config("deep-linear").sources()["singular_values"] == "derived"


def test_python_values_are_accepted_as_well_as_text():
    config = make_config("conditional-ot", {"particles": [1, 2], "t1": 10, "seed": 3})
    assert config.particles == (1, 2) and config.t1 == 10.0 and isinstance(config.t1, float)


# ---------------------------------------------------------------------------------------------
# validation: every field, relations naming the key set, memory


MEMORY = "fits in this machine's"  # what a refusal of sizes too large for this machine says


@pytest.mark.parametrize(
    "name, overrides, field, fragment",
    [
        ("deep-linear", {"seed": str(2**64)}, "seed", "between 0 and 9223372036854775807"),
        ("deep-linear", {"seed": "-1"}, "seed", "between 0 and"),
        ("deep-linear", {"dim": "300"}, "dim", "dim ≤ n = 256"),  # the key set, not n
        ("deep-linear", {"n": "4"}, "n", "n ≥ dim = 8"),
        ("deep-linear", {"dim": "2"}, "dim", None),  # valid: singular values derived from dim
        ("deep-linear", {"quick": "true", "dim": "2"}, "dim", "dim ≥ 4"),
        ("deep-linear", {"quick": "true", "depth": "100000"}, "depth", "depth·dim²"),
        ("deep-linear", {"init_scale": "1e-200"}, "init_scale", "init_scale^depth"),
        ("deep-linear", {"gd_lr": "1e-9", "t1": "100"}, "gd_lr", "at most 50000000 steps"),
        ("lojasiewicz", {"solver": "rk4"}, "solver", "'tsit5'"),
        ("lojasiewicz", {"controller": "p"}, "controller", "'integral', 'pid'"),
        ("lojasiewicz", {"extend": "1"}, "extend", "> 1"),
        ("mean-field-limit", {"particles": "3,4"}, "particles", "doubles all divide"),
        (
            "resnet-depth",
            {"inits": "tied,smooth", "reference_inits": "iid"},
            "reference_inits",
            "a subset of inits",
        ),
        ("resnet-depth", {"inits": "iid"}, "inits", "including the reference_inits"),
        ("resnet-long", {"saves": "7"}, "saves", "a multiple of piece = 16"),
        ("resnet-long", {"piece": "7"}, "piece", "a divisor of saves = 160"),
        ("resnet-pl", {"preset": "quick", "piece": "32"}, "piece", "a divisor of saves = 16"),
        ("resnet-digits", {"input_dim": "40"}, "input_dim", "≤ dim = 32"),
        ("resnet-relu", {"activations": "relu,swish"}, "activations", "one of"),
        ("conditional-ot", {"init_scales": "0.5,nan"}, "init_scales", "finite"),
        ("conditional-ot", {"particles": ""}, "particles", "a non-empty comma-separated list"),
        # sizes beyond this machine's memory, estimated before anything runs
        ("deep-linear", {"n": "1000000000"}, "n", MEMORY),
        ("deep-linear", {"saves": "2000000000"}, "saves", MEMORY),
        ("resnet-depth", {"width": "100000"}, "width", MEMORY),
        ("resnet-long", {"n": "100000", "depth": "1000"}, "n", MEMORY),
        ("resnet-pl", {"widths": "8,100000"}, "widths", MEMORY),
        ("resnet-digits", {"depth": "10000000"}, "depth", MEMORY),
        ("resnet-relu", {"halves": "2,2000000000"}, "halves", MEMORY),
        ("conditional-ot", {"particles": "1,2000000000"}, "particles", MEMORY),
        ("lojasiewicz", {"particles": "100000", "layers": "100000"}, "layers", MEMORY),
        ("mean-field-limit", {"n": "2000000000"}, "n", MEMORY),
    ],
)
def test_invalid_values_name_the_key_set(name, overrides, field, fragment):
    if fragment is None:
        make_config(name, overrides)
        return
    with pytest.raises(gf.ConfigError) as info:
        make_config(name, overrides)
    assert info.value.field == field, str(info.value)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_the_memory_check_names_the_size_the_user_moved():
    from gradflow.experiments._config import user_keys

    config = make_config("resnet-long", {"width": "65"})
    with user_keys({"width"}), pytest.raises(gf.ConfigError) as info:
        config.check_memory(limit=1000)
    assert info.value.field == "width"
    config.check_memory()  # fits here


# ---------------------------------------------------------------------------------------------
# config.json: the configuration that ran, and its provenance


def test_the_record_round_trips_through_json():
    effective = effective_config(
        "resnet-depth", {"preset": "quick", "inits": "tied,iid", "reference_inits": "tied"}
    )
    record = json.loads(json.dumps(effective.record()))
    assert record["config"]["depths"] == [4, 8, 16] and record["preset"] == "quick"
    assert record["set_by_user"] == ["inits", "reference_inits"]
    assert from_record(record) == effective
    record["config"].pop("width")
    with pytest.raises(gf.ConfigError, match="width"):
        from_record(record)


def test_provenance_names_versions_commit_device_and_dtype():
    record = provenance(make_config("deep-linear"))
    for key in ("gradflow", "jax", "jaxlib", "diffrax", "equinox", "optax", "python"):
        assert isinstance(record[key], str) and record[key], key
    assert record["backend"] == "cpu" and record["device"].startswith("cpu")
    assert record["dtype"] == "float64" and record["inputs"] == {}
    git = record["git"]  # these tests run from a checkout
    assert git is None or (len(git["commit"]) == 40 and isinstance(git["dirty"], bool))


def test_input_files_are_checked_and_hashed(fake_experiment, tmp_path):
    import hashlib

    with pytest.raises(gf.ConfigError) as info:
        make_config("test-fake", {"data_file": str(tmp_path / "missing.npz")})
    assert info.value.field == "data_file" and "readable file" in str(info.value)
    data = tmp_path / "data.npz"
    data.write_bytes(b"some data")
    inputs = provenance(make_config("test-fake", {"data_file": str(data)}))["inputs"]
    assert inputs["data_file"]["sha256"] == hashlib.sha256(b"some data").hexdigest()


# ---------------------------------------------------------------------------------------------
# gradflow describe and --dry-run


@pytest.mark.parametrize("name", NAMES)
def test_describe_lists_every_key_with_its_values_and_meaning(name):
    rows = describe(name)
    keys = [r["key"] for r in rows]
    assert keys == ["preset", *(f.name for f in dataclasses.fields(config_cls(name)))]
    for row in rows:
        assert all(row[k] for k in ("type", "default", "quick", "tiny", "meaning")), row


def test_gradflow_describe_prints_a_table_and_refuses_unknown_names():
    result = invoke("describe", "resnet-pl")
    exited(result, 0)
    for word in ("widths", "list of int", "3,48", "2,8", "the widths m swept", "tiny"):
        assert word in result.stdout, word
    result = invoke("describe", "no-such")
    exited(result, 2)
    assert "no-such" in one_error_line(result.stderr)


def test_dry_run_prints_the_effective_configuration_and_creates_nothing(tmp_path):
    out = tmp_path / "run"
    result = invoke(
        "run", "deep-linear", "--set", "quick=true", "--set", "depth=4", "--dry-run", "--out", out
    )
    exited(result, 0)
    lines = result.stdout.splitlines()
    assert lines[0] == f"experiment deep-linear, preset quick; would write {out}"
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:] if line.strip()}
    assert rows["depth"] == ["4", "set"] and rows["dim"] == ["4", "preset"]
    assert rows["rtol"] == ["1e-10", "default"]
    assert any(line.startswith("estimated memory") for line in lines)
    assert not out.exists()
    result = invoke("run", "deep-linear", "--set", "depth=0", "--dry-run", "--out", out)
    exited(result, 2)
    assert "depth=0" in one_error_line(result.stderr) and not out.exists()
