"""Reading and writing model.yaml: YAML text <-> Spec (config/spec.py builds and checks it).

The packaged default is the paper's configuration (config/digits.yaml, the same file as
examples/digits.yaml).
"""

from __future__ import annotations

import collections.abc
from importlib import resources
from pathlib import Path

import yaml

from analogep.config.presets import device_presets, is_device_preset
from analogep.config.schema import ConfigError, to_dict
from analogep.config.spec import Spec, from_dict


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses duplicate mapping keys (YAML 1.2 requires unique keys;
    PyYAML otherwise keeps the last value without a word), and reports a tagged scalar that
    its constructor cannot read (`!!int abc`, `!!timestamp x`, `!!bool maybe`) as a YAML
    error at its line rather than the constructor's ValueError, KeyError or AttributeError."""

    def construct_object(self, node: yaml.Node, deep: bool = False):
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, KeyError, AttributeError, TypeError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {node.tag} value {_short(node.value)} ({_one_line(exc)})", node.start_mark
            ) from None


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)  # merge keys (<<) as SafeLoader does
    mapping = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, collections.abc.Hashable):
            raise yaml.constructor.ConstructorError(None, None, f"a {type(key).__name__} as a key", key_node.start_mark)
        if key in mapping:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {_short(key)}", key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (PyYAML's span several)."""
    return " ".join(str(exc).split())


def _short(value: object) -> str:
    text = repr(value) if not isinstance(value, (list, dict)) else f"a {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


# Files people pass where a config belongs, recognised by their first bytes.
_BINARY_KINDS = {b"\x93NUMPY": "a numpy .npy array", b"PK\x03\x04": "a zip archive (a .npz checkpoint?)",
                 b"\x89PNG": "a PNG image"}


def _parse(raw: bytes | str, source: str) -> object:
    """YAML text (bytes: UTF-8, or UTF-16 with a byte-order mark) -> Python data."""
    if isinstance(raw, bytes):
        kind = next((k for magic, k in _BINARY_KINDS.items() if raw.startswith(magic)), None)
        if kind is not None:
            raise ConfigError(f"{source}: not a config ({kind}); a config is a model.yaml text file")
    try:
        return yaml.load(raw, Loader=_UniqueKeyLoader)
    except yaml.reader.ReaderError as exc:  # undecodable bytes or a control character
        if exc.encoding == "unicode":  # decoded, but a character YAML does not allow
            what = f"not YAML text (character U+{exc.character:04X} at character {exc.position}: {exc.reason})"
        else:
            what = f"not {exc.encoding.upper()} text (byte 0x{exc.character:02x} at byte {exc.position}: {exc.reason})"
        raise ConfigError(f"{source}: {what}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or exc
        raise ConfigError(f"{source}:{where} not valid YAML ({_one_line(problem)})") from None
    except RecursionError:
        raise ConfigError(f"{source}: not valid YAML (nested too deeply to read)") from None


def load_spec(path: str | Path | None = None) -> Spec:
    """Load model.yaml (or the packaged paper config when `path` is None)."""
    if path is None:
        raw = resources.files("analogep.config").joinpath("digits.yaml").read_bytes()
        source = "default config"
    else:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{path}: no such config file")
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror or _one_line(exc)})") from None
        source = str(path)
    data = _parse(raw, source)
    try:
        return from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def dump_spec(spec: Spec) -> str:
    """YAML text of the resolved config (written to RUN_DIR/config.yaml)."""
    return yaml.safe_dump(to_dict(spec), sort_keys=False)


def with_devices(spec: Spec, source: str) -> Spec:
    """`spec` with its devices section replaced by `source`: a preset name (rram, pcm, ideal)
    or a YAML file holding a devices mapping (its keys, or a top-level `devices:` section);
    a file without `preset` starts from ideal. Errors name --devices and the key."""
    path = Path(source)
    if source.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
            raise ConfigError(f"--devices: {source}: no such file")
        try:
            data = _parse(path.read_bytes(), source)
        except OSError as exc:
            raise ConfigError(f"--devices: {source}: cannot read ({exc.strerror or _one_line(exc)})") from None
        if isinstance(data, dict) and set(data) == {"devices"}:
            data = data["devices"]
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"--devices: {source}: expected a mapping of device keys, got {type(data).__name__}")
        where = source
    else:
        if not is_device_preset(source):
            raise ConfigError(
                f"--devices: {source!r} is neither a preset ({', '.join(device_presets())}) nor a .yaml file"
            )
        data, where = {"preset": source}, "--devices"
    full = to_dict(spec)
    full["devices"] = data
    try:
        return from_dict(full)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
