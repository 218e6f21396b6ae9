"""Fuzzing `--set` (issue 8, item 6): for every registered experiment and every key, invalid
values (wrong types, out-of-range numbers, integers ≥ 2⁶⁴, NaN/inf, empty lists, unknown
choices, garbage text) give a one-line `ConfigError` naming that key and nothing else, through
the same validation `gradflow run --dry-run` uses (`effective_config`); valid values (each
preset's own values written back as text, any seed) are accepted as given. A few drawn invalid
cases go through the real CLI as a subprocess: exit 2, one stderr line, no traceback, no folder.
"""

import dataclasses
import json
import typing

import pytest
from cli_helpers import run_subprocess
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gradflow as gf
from gradflow.experiments import PRESETS, REGISTRY, effective_config
from gradflow.experiments._checks import choices_of
from gradflow.experiments._parse import _item_type, _optional_inner, parse_text, to_text

# gradflow's own experiments (test-only ones, e.g. the sweep tests' toy, register themselves
# when their test module is collected and are not reachable from the CLI).
NAMES = sorted(n for n, e in REGISTRY.items() if e.config_cls.__module__.startswith("gradflow."))
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Text as a shell can pass it in argv: no NUL, no lone surrogates.
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
)


def _parses(convert, text: str) -> bool:
    try:
        convert(text)
    except (ValueError, OverflowError):
        return False
    return True


BOOL_WORDS = {"true", "false", "1", "0", "yes", "no", "on", "off"}
NONE_WORDS = {"none", "null"}


def bad_ints() -> st.SearchStrategy[str]:
    """Never a valid value of any integer field (all are counts or seeds: ≥ 0, < 2⁶⁴)."""
    return st.one_of(
        TEXT.filter(lambda t: not _parses(int, t) and t.strip().lower() not in NONE_WORDS),
        st.integers(min_value=2**64, max_value=2**300).map(str),
        st.integers(max_value=-1).map(str),
        st.sampled_from(["1.5", "nan", "inf", "-inf", "1e3", "0x10", "true", "[]", "[1]"]),
    )


def bad_floats() -> st.SearchStrategy[str]:
    """Never a valid value of any float field (all are positive and finite)."""
    return st.one_of(
        TEXT.filter(lambda t: not _parses(float, t) and t.strip().lower() not in NONE_WORDS),
        st.floats(max_value=0.0, allow_nan=False).map(repr),
        st.sampled_from(["nan", "NaN", "inf", "-inf", "1e999", "-1e999", "0", "true", "[]"]),
    )


def bad_choices(names) -> st.SearchStrategy[str]:
    names = {str(n) for n in names}
    return st.one_of(
        TEXT.filter(
            lambda t: (
                t.strip() not in names
                and "," not in t
                and t.strip().lower() not in NONE_WORDS
                and t.strip()
            )
        ),
        st.sampled_from(["rk4", "ReLU", "TIED", "fast", "42"]).filter(lambda t: t not in names),
    )


def bad_items(item, choices) -> st.SearchStrategy[str]:
    """One invalid list item: non-empty, without commas (it stays one item)."""
    if item is int:
        base = bad_ints()
    elif item is float:
        base = bad_floats()
    else:
        base = bad_choices(choices_of(choices))
    return base.filter(lambda t: t.strip() and "," not in t and not t.strip().startswith("["))


def invalid_values(annotation, choices) -> st.SearchStrategy[str]:
    """Text that is invalid for a field of type `annotation` whatever the other fields."""
    inner, _ = _optional_inner(annotation)
    item = _item_type(inner)
    if item is not None:
        good = "1" if item is not str else str(choices_of(choices)[0])
        return st.one_of(
            st.sampled_from(["", "[]", " , ", "[[1]]", "{}"]),
            st.tuples(bad_items(item, choices), st.booleans()).map(
                lambda pair: f"{good},{pair[0]}" if pair[1] else pair[0]
            ),
        )
    if inner is bool:
        return TEXT.filter(lambda t: t.strip().lower() not in BOOL_WORDS)
    if inner is int:
        return bad_ints()
    if inner is float:
        return bad_floats()
    return bad_choices(choices_of(choices))


def field_cases(name):
    """[(key, invalid strategy)] of experiment `name`, preset and quick included."""
    cls = REGISTRY[name].config_cls
    hints = typing.get_type_hints(cls)
    cases = [
        ("preset", bad_choices(PRESETS)),
        ("quick", TEXT.filter(lambda t: t.strip().lower() not in BOOL_WORDS)),
    ]
    for f in dataclasses.fields(cls):
        if hints[f.name] is str or _optional_inner(hints[f.name])[0] is str:
            # every text field is a choice among names (files have their own test)
            assert f.metadata.get("choices") is not None or f.metadata.get("file"), f.name
            if f.metadata.get("file"):
                continue
        cases.append((f.name, invalid_values(hints[f.name], f.metadata.get("choices"))))
    return cases


def check_invalid(name, key, text) -> None:
    """`--set key=text` gives one `ConfigError` naming `key` and nothing else."""
    try:
        effective_config(name, {key: text})
    except gf.ConfigError as err:
        message = str(err)
        assert err.field == key, (name, key, text, message)
        assert "\n" not in message and "\r" not in message, message
        return
    except Exception as err:  # noqa: BLE001 - any other exception is the failure looked for
        pytest.fail(f"{name} {key}={text!r}: {type(err).__name__}: {err}")
    pytest.fail(f"{name} {key}={text!r} was accepted")


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.data())
def test_invalid_values_give_one_config_error_naming_the_key(name, data):
    cases = field_cases(name)
    key, strategy = data.draw(st.sampled_from(cases), label="key")
    text = data.draw(strategy, label="value")
    check_invalid(name, key, text)


@pytest.mark.parametrize("key, text", [("seed", "0\x1f"), ("seed", "3\x1c"), ("rtol", "1e-8\x1e")])
def test_control_characters_are_not_white_space(key, text):
    # Found by the fuzz test above: str.strip() removes \x1c-\x1f, int() and float() do not.
    check_invalid("deep-linear", key, text)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_valid_values_are_accepted_as_given(name, data):
    cls = REGISTRY[name].config_cls
    preset = data.draw(st.sampled_from(PRESETS), label="preset")
    base = effective_config(name, {"preset": preset}).config
    field = data.draw(st.sampled_from(dataclasses.fields(cls)), label="key")
    value = getattr(base, field.name)
    texts = [to_text(value)]
    if isinstance(value, tuple):
        texts.append(json.dumps(list(value)))
    for text in texts:
        effective = effective_config(name, {"preset": preset, field.name: text})
        assert effective.config == base and effective.user_keys == (field.name,)
    seed = data.draw(st.integers(min_value=0, max_value=2**63 - 1), label="seed")
    assert effective_config(name, {"preset": preset, "seed": str(seed)}).config.seed == seed


FINITE = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(
    value=st.one_of(
        FINITE.map(lambda x: (float, x)),
        st.integers(min_value=-(2**70), max_value=2**70).map(lambda x: (int, x)),
        st.lists(FINITE, min_size=1, max_size=5).map(lambda x: (tuple[float, ...], tuple(x))),
        st.lists(st.integers(), min_size=1, max_size=5).map(lambda x: (tuple[int, ...], tuple(x))),
        st.none().map(lambda x: (float | None, x)),
        st.booleans().map(lambda x: (bool, x)),
    )
)
def test_the_set_text_of_a_value_parses_back_to_it_exactly(value):
    annotation, x = value
    assert parse_text("key", to_text(x), annotation) == x


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_drawn_invalid_values_through_the_real_cli(tmp_path_factory, data):
    name = data.draw(st.sampled_from(NAMES), label="experiment")
    key, strategy = data.draw(st.sampled_from(field_cases(name)), label="key")
    text = data.draw(strategy, label="value")
    cwd = tmp_path_factory.mktemp("fuzz-cli")
    proc = run_subprocess(
        "run", name, "--set", f"{key}={text}", "--out", "out", cwd=cwd, timeout=120
    )
    assert proc.returncode == 2, (name, key, text, proc.stderr)
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: invalid {key}="), (text, lines)
    assert list(cwd.iterdir()) == []  # no folder created
