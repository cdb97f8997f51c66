"""YAML → Python values plus the line of every node, so errors can say `file:line`."""
from __future__ import annotations

import yaml

from lynkr.errors import ConfigError

__all__ = ["load_yaml_with_lines", "line_of"]


class _Loader(yaml.SafeLoader):
    pass


_SCALARS = yaml.constructor.SafeConstructor()


def load_yaml_with_lines(text: str, file: str | None = None) -> tuple[object, dict[tuple, int]]:
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"YAML syntax error: {problem}", file=file,
                          line=(mark.line + 1) if mark else None) from None
    lines: dict[tuple, int] = {}
    if node is None:
        return None, lines
    return _build(node, (), lines, file), lines


def _build(node, path, lines, file):
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key = _build(key_node, path, {}, file)
            if not isinstance(key, (str, int, float, bool)):
                raise ConfigError("mapping keys must be scalars", file=file, line=key_node.start_mark.line + 1, path=path)
            if key in out:
                raise ConfigError(f"duplicate key '{key}'", file=file, line=key_node.start_mark.line + 1, path=path)
            out[key] = _build(value_node, path + (key,), lines, file)
            lines[path + (key,)] = key_node.start_mark.line + 1   # errors point at the key
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(v, path + (i,), lines, file) for i, v in enumerate(node.value)]
    return _SCALARS.construct_object(node, deep=True)


def line_of(lines: dict[tuple, int], path) -> int | None:
    """The line of `path`, or of its nearest ancestor that has one."""
    path = tuple(path)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())
