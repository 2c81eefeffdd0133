"""`--config FILE.yaml`: option values from a file, under the flags given on the command line.

Keys are option names (`crf`, `pix-fmt` or `pix_fmt`, `fp16`, ...). The file's values become the
command's defaults (Click's `default_map`), so any flag typed on the command line wins.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import UsageError

# Options that make no sense in a config file.
_NOT_CONFIGURABLE = {"config", "input", "output"}


def load_config(ctx, param, value: Path | None):
    """Eager Typer callback: read the YAML file and install it as the command's defaults."""
    if value is None:
        return value
    try:
        text = Path(value).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read --config {value}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"cannot read --config {value}: not a text file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise UsageError(f"--config {value} is not valid YAML{line}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UsageError(f"--config {value} must hold a mapping of option names to values")
    known = {p.name for p in ctx.command.params} - _NOT_CONFIGURABLE
    defaults = {}
    for key, item in data.items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise UsageError(f"--config {value}: unknown option {key!r} for `{ctx.command.name}`")
        defaults[name] = item
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value
