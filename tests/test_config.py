"""fromzero.config: typed dataclasses from dicts/YAML, dotted overrides, error messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from fromzero.config import (
    apply_overrides,
    describe,
    dump_yaml,
    field,
    from_dict,
    load_yaml,
    parse_override,
    require,
    to_dict,
)
from fromzero.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    width: int = field(8, help="layer width")
    ratio: float = field(0.5, help="a fraction")

    def __post_init__(self) -> None:
        require(0 <= self.ratio <= 1, "ratio", f"must be in [0, 1], got {self.ratio}")


@dataclass(frozen=True)
class Outer:
    name: str = field(help="run name (required)")
    steps: int = field(10, help="number of steps")
    kind: Literal["adamw", "sgd"] = field("adamw", help="optimizer kind")
    limit: int | None = field(None, help="optional cap")
    betas: list[float] = field([0.9, 0.95], help="two floats")
    flag: bool = field(False, help="a switch")
    inner: Inner = field(default_factory=Inner, help="nested section")


def err(data: dict, **kw) -> str:
    with pytest.raises(ConfigError) as info:
        from_dict(Outer, data, **kw)
    return str(info.value)


def test_valid_nested_and_conversions():
    cfg = from_dict(Outer, {"name": "a", "betas": [1, 0], "limit": 5, "inner": {"ratio": 1}})
    assert cfg.betas == [1.0, 0.0] and all(type(b) is float for b in cfg.betas)
    assert isinstance(cfg.inner, Inner) and cfg.inner == Inner(width=8, ratio=1.0)
    assert type(cfg.inner.ratio) is float
    assert cfg.limit == 5 and from_dict(Outer, {"name": "a", "limit": None}).limit is None
    assert from_dict(Outer, {"name": "a"}) == Outer(name="a")
    assert to_dict(cfg)["inner"] == {"width": 8, "ratio": 1.0}


def test_unknown_key_suggests_closest():
    msg = err({"name": "a", "stpes": 3})
    assert "stpes: unknown key" in msg and "did you mean 'steps'" in msg
    msg = err({"name": "a", "inner": {"widht": 3}}, file="r.yaml", prefix="train")
    assert msg.startswith("r.yaml: train.inner.widht: unknown key")
    assert "did you mean 'train.inner.width'" in msg
    assert "did you mean" not in err({"name": "a", "zzzzzz": 1})


@pytest.mark.parametrize("data,key", [
    ({"name": "a", "steps": "ten"}, "steps"),
    ({"name": "a", "steps": True}, "steps"),  # bool is not an int here
    ({"name": "a", "steps": 2.5}, "steps"),
    ({"name": "a", "inner": {"ratio": "half"}}, "inner.ratio"),
    ({"name": "a", "inner": {"ratio": False}}, "inner.ratio"),
    ({"name": 3}, "name"),
    ({"name": "a", "flag": 1}, "flag"),
    ({"name": "a", "limit": "x"}, "limit"),
    ({"name": "a", "betas": 0.9}, "betas"),
    ({"name": "a", "betas": [0.9, "b"]}, "betas[1]"),
    ({"name": "a", "inner": 4}, "inner"),
])
def test_wrong_type_names_key(data, key):
    msg = err(data, file="r.yaml")
    assert msg.startswith(f"r.yaml: {key}: ")
    assert "expected" in msg


def test_literal_value_not_allowed():
    msg = err({"name": "a", "kind": "sdg"})
    assert "kind: 'sdg' is not one of 'adamw', 'sgd'" in msg and "did you mean 'sgd'" in msg


def test_missing_required_key():
    assert err({"steps": 3}, file="r.yaml") == "r.yaml: name: required key is missing"


def test_require_in_post_init_names_nested_key():
    msg = err({"name": "a", "inner": {"ratio": 2}}, prefix="model")
    assert msg == "model.inner.ratio: must be in [0, 1], got 2.0"


def test_not_a_mapping():
    with pytest.raises(ConfigError, match="expected a mapping"):
        from_dict(Outer, [1, 2])


def test_apply_overrides_dotted_and_yaml_typed():
    data = {"train": {"max_steps": 10, "lr": 0.1}, "model": {"name": "gpt"}}
    out = apply_overrides(data, ["--train.max_steps=50", "--a.b=true", "--model.name=gpt-char-tiny",
                                 "--train.lr=1e-3", "--x.y.z=null", "--train.tags=[1, 2]"])
    assert out["train"]["max_steps"] == 50 and type(out["train"]["max_steps"]) is int
    assert out["a"]["b"] is True
    assert out["model"]["name"] == "gpt-char-tiny"
    assert out["train"]["lr"] == 1e-3 and type(out["train"]["lr"]) is float
    assert out["x"]["y"]["z"] is None and out["train"]["tags"] == [1, 2]
    assert data["train"]["max_steps"] == 10  # the input is not modified


@pytest.mark.parametrize("raw,value", [("1e-3", 1e-3), ("3E5", 3e5), ("-2.5e+2", -250.0), ("1.0e-3", 1e-3),
                                       ("12", 12), ("1_000", 1000), ("'1e-3'", "1e-3"), ("1e", "1e")])
def test_override_numbers(raw, value):
    """Exponent floats without a dot are floats (YAML 1.1 alone would read 1e-3 as a string)."""
    parsed = parse_override(f"--x.y={raw}")[1]
    assert parsed == value and type(parsed) is type(value)


def test_override_errors():
    with pytest.raises(ConfigError, match="expected --section.key=value"):
        apply_overrides({}, ["--train.max_steps"])
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"train": {"max_steps": 10}}, ["--train.max_steps.x=1"])
    with pytest.raises(ConfigError, match="empty key"):
        apply_overrides({}, ["--train..x=1"])


def test_load_yaml(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("train:\n  max_steps: 5\n  lr: 1e-3\n  name: run1\n")
    data = load_yaml(path)
    assert data == {"train": {"max_steps": 5, "lr": 1e-3, "name": "run1"}}
    assert type(data["train"]["lr"]) is float
    empty = tmp_path / "empty.yaml"
    for text in ("", "\n  \n", "# only a comment\n"):  # almost always a mistake: no recipe means the defaults
        empty.write_text(text)
        with pytest.raises(ConfigError, match=f"{empty}: the file (is empty|holds only comments)"):
            load_yaml(empty)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00 not text")
    with pytest.raises(ConfigError, match=f"{binary}: not UTF-8 text"):
        load_yaml(binary)


def test_load_yaml_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="not found") as info:
        load_yaml(missing)
    assert str(missing) in str(info.value)


def test_load_yaml_invalid_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("a: 1\nb: 2\n  c: 3\n")  # line 3 is mis-indented
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert str(info.value).startswith(f"{path}:3: invalid YAML")
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(path)


def test_describe_lists_keys_with_help():
    lines = describe(Outer)
    assert "name (str, default 'required'): run name (required)" in lines
    assert "steps (int, default 10): number of steps" in lines
    assert "kind ('adamw' | 'sgd', default 'adamw'): optimizer kind" in lines
    assert "inner.width (int, default 8): layer width" in lines
    assert any(line.startswith("limit (int | null, default None)") for line in lines)
    assert any(line.startswith("betas (list of float, default [0.9, 0.95])") for line in lines)


def test_dump_yaml_round_trip(tmp_path):
    cfg = from_dict(Outer, {"name": "a", "steps": 3, "inner": {"width": 2}})
    path = tmp_path / "out.yaml"
    path.write_text(dump_yaml(to_dict(cfg)))
    assert from_dict(Outer, load_yaml(path)) == cfg


def test_list_default_is_not_shared():
    a, b = Outer(name="a"), Outer(name="b")
    a.betas.append(1.0)
    assert b.betas == [0.9, 0.95]
