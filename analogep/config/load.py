"""Reading and writing model.yaml: YAML text <-> Spec (config/spec.py validates).

The packaged default is the paper's configuration (config/digits.yaml, the same file as
examples/digits.yaml).
"""

from __future__ import annotations

from collections.abc import Hashable
from importlib import resources
from pathlib import Path

import yaml

from analogep.config.spec import ConfigError, Spec, from_dict, to_dict


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses duplicate mapping keys (YAML 1.2 requires unique keys;
    PyYAML otherwise keeps the last value without a word)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)  # merge keys (<<) as SafeLoader does
    mapping = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(None, None, f"a {type(key).__name__} as a key", key_node.start_mark)
        if key in mapping:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_spec(path: str | Path | None = None) -> Spec:
    """Load model.yaml (or the packaged paper config when `path` is None)."""
    if path is None:
        text = resources.files("analogep.config").joinpath("digits.yaml").read_text()
        source = "default config"
    else:
        text = _read_text(Path(path))
        source = str(path)
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        if isinstance(exc, yaml.reader.ReaderError):  # its str() spans two lines
            code = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or "\0")
            where, problem = f" character {exc.position + 1}", f"{exc.reason}: #x{code:04x}"
        else:
            problem = getattr(exc, "problem", None) or exc
        raise ConfigError(f"{source}:{where} not valid YAML ({problem})") from None
    try:
        return from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


# What a binary file passed as a config usually is, by its first bytes.
_BINARY_KINDS = {b"\x93NUMPY": "a numpy .npy array", b"PK\x03\x04": "a zip archive (a .npz checkpoint?)",
                 b"\x89PNG": "a PNG image"}


def _read_text(p: Path) -> str:
    """A config file's text, or one line saying why it is not a config."""
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        kind = next((k for magic, k in _BINARY_KINDS.items() if raw.startswith(magic)), None)
        why = kind or f"byte {exc.start} is not UTF-8 text"
        raise ConfigError(f"{p}: not a config ({why}); a config is a model.yaml text file") from None


def dump_spec(spec: Spec) -> str:
    """YAML text of the resolved config (written to RUN_DIR/config.yaml)."""
    return yaml.safe_dump(to_dict(spec), sort_keys=False)
