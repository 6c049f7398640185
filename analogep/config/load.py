"""Reading and writing model.yaml: YAML text <-> Spec (config/spec.py validates).

The packaged default is the paper's configuration (config/digits.yaml, the same file as
examples/digits.yaml).
"""

from __future__ import annotations

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
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{path}: no such config file")
        text = p.read_text()
        source = str(path)
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{source}:{where} not valid YAML ({getattr(exc, 'problem', exc)})") from None
    try:
        return from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def dump_spec(spec: Spec) -> str:
    """YAML text of the resolved config (written to RUN_DIR/config.yaml)."""
    return yaml.safe_dump(to_dict(spec), sort_keys=False)
