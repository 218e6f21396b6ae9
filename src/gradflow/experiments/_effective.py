"""The effective configuration of a run: defaults, then a preset, then the user's `--set` values
(which always win), derived defaults filled in, validated as a whole and checked against the
machine's memory — all before anything is written.

`effective_config(name, overrides)` is what `gradflow run` (and `--dry-run`) uses;
`make_config(name, overrides)` returns just its config; `from_record(record)` rebuilds one from
a run folder's config.json (`--resume`); `describe(name)` lists every key for `gradflow describe`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .._errors import ConfigError
from ._base import get_experiment
from ._config import ExperimentConfig, field_specs, user_keys
from ._parse import coerce, to_text, type_name

PRESETS = ("full", "quick", "tiny")
PRESET_MEANING = (
    "the values applied before yours: 'full' (the defaults), 'quick' (under a minute, the same "
    "files) or 'tiny' (a few seconds); quick=true is preset=quick"
)


@dataclasses.dataclass(frozen=True)
class EffectiveConfig:
    """The configuration that runs: `config` (every field), the `preset` applied under the user's
    values and the keys the user set (`user_keys`, in the order given)."""

    experiment: str
    preset: str
    user_keys: tuple[str, ...]
    config: ExperimentConfig

    def record(self) -> dict[str, Any]:
        """The configuration part of config.json."""
        return {
            "experiment": self.experiment,
            "preset": self.preset,
            "set_by_user": list(self.user_keys),
            "config": self.config.to_json(),
        }

    def sources(self) -> dict[str, str]:
        """{field: 'set' | 'preset' | 'derived' | 'default'}: where each value comes from."""
        cls = type(self.config)
        preset = cls.preset_values(self.preset)
        out = {}
        for name, (f, _) in field_specs(cls).items():
            if name in self.user_keys:
                out[name] = "set"
            elif name in preset:
                out[name] = "preset"
            elif getattr(self.config, name) != f.default:
                out[name] = "derived"
            else:
                out[name] = "default"
        return out


def _choose_preset(overrides: dict[str, Any]) -> str:
    """Pop `preset` and its alias `quick` from `overrides`; return the preset's name."""
    preset = None
    if "preset" in overrides:
        raw = overrides.pop("preset")
        preset = raw.strip().lower() if isinstance(raw, str) else raw
        if preset not in PRESETS:
            raise ConfigError("preset", raw, "one of " + ", ".join(repr(p) for p in PRESETS))
    if "quick" in overrides:
        raw = overrides.pop("quick")
        quick = coerce("quick", raw, bool)
        if quick and preset not in (None, "quick"):
            raise ConfigError(
                "quick", raw, f"false with preset={preset!r} (quick=true is preset=quick)"
            )
        if not quick and preset == "quick":
            raise ConfigError("quick", raw, "true with preset='quick'")
        if quick:
            preset = "quick"
    return preset or "full"


def _unknown_key(name: str, key: str, specs) -> ConfigError:
    keys = sorted([*specs, "preset"])
    return ConfigError("--set", key, f"a key of experiment '{name}': " + ", ".join(keys))


def effective_config(name: str, overrides: dict[str, Any] | None = None) -> EffectiveConfig:
    """The validated effective configuration of experiment `name` with `overrides` ({key: text
    or typed value}; `preset=full|quick|tiny`, `quick=true` an alias). Raises `ConfigError`
    naming the key at fault (never anything else) before any work."""
    exp = get_experiment(name)
    cls = exp.config_cls
    specs = field_specs(cls)
    overrides = dict(overrides or {})
    for key in overrides:
        if not isinstance(key, str) or (key not in specs and key not in ("preset", "quick")):
            raise _unknown_key(name, str(key), specs)
    preset = _choose_preset(overrides)
    values = {key: coerce(key, raw, specs[key][1]) for key, raw in overrides.items()}
    with user_keys(values):
        config = cls(**{**cls.preset_values(preset), **values})
        config.check_fields()
        config = config.complete()
        config.validate()
        config.check_memory()
    return EffectiveConfig(name, preset, tuple(values), config)


def make_config(name: str, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """The experiment's effective config with `overrides` applied and validated."""
    return effective_config(name, overrides).config


def from_record(record: Any) -> EffectiveConfig:
    """The effective configuration stored in a run folder's config.json (`record`), validated
    again (the machine may differ). Raises `ConfigError` if it is not one."""
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise ConfigError(
            "config.json", "…", "a gradflow run configuration with a 'config' section"
        )
    exp = get_experiment(record.get("experiment"))
    cls = exp.config_cls
    specs = field_specs(cls)
    values = record["config"]
    preset = record.get("preset", "full")
    user = record.get("set_by_user", [])
    if preset not in PRESETS or not isinstance(user, list) or not all(k in specs for k in user):
        raise ConfigError("config.json", preset, "a record with a preset and the keys set")
    if set(values) != set(specs):
        differ = sorted(set(values) ^ set(specs))
        raise ConfigError(
            "config.json",
            ", ".join(differ),
            f"the fields of {exp.name} in this version of gradflow (the file is from another)",
        )
    typed = {key: coerce(key, values[key], specs[key][1]) for key in specs}
    with user_keys(user):
        config = cls(**typed)
        config.validate()
        config.check_memory()
    return EffectiveConfig(exp.name, preset, tuple(user), config)


def describe(name: str) -> list[dict[str, str]]:
    """One row per `--set` key of experiment `name`: key, type, default, quick, tiny, meaning
    (values as `--set` text); `preset` first."""
    exp = get_experiment(name)
    cls = exp.config_cls
    quick, tiny = cls.preset_values("quick"), cls.preset_values("tiny")
    rows = [
        dict(
            key="preset",
            type="str",
            default="full",
            quick="quick",
            tiny="tiny",
            meaning=PRESET_MEANING,
        )
    ]
    for key, (f, annotation) in field_specs(cls).items():
        meaning = f.metadata.get("meaning", "")
        choices = f.metadata.get("choices")
        if choices is not None:
            from ._checks import choices_of

            meaning += " (one of " + ", ".join(map(str, choices_of(choices))) + ")"
        rows.append(
            dict(
                key=key,
                type=type_name(annotation),
                default=to_text(f.default),
                quick=to_text(quick.get(key, f.default)),
                tiny=to_text(tiny.get(key, f.default)),
                meaning=meaning,
            )
        )
    return rows
