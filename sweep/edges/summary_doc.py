"""`summary.json`'s schema, written from the types that define it (`sweep.core.sections`): a
JSON Schema for programs (`docs/summary.schema.json`) and a page for people (`docs/summary.md`),
each field with its type and the comment the code gives it. Both are generated, so they cannot
drift from what the pipeline writes; the tests compare them with the committed files.

    python -m sweep.edges.summary_doc          # rewrite both files
    python -m sweep.edges.summary_doc --check  # exit 1 when either is out of date
"""

from __future__ import annotations

import argparse
import ast
import functools
import inspect
import json
import sys
import textwrap
import types
from pathlib import Path
from typing import Any, NotRequired, Union, get_args, get_origin, get_type_hints, is_typeddict

from sweep.core.sections import SUMMARY_FORMAT, Summary

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCHEMA_FILE, PAGE_FILE = DOCS / "summary.schema.json", DOCS / "summary.md"
SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}

INTRODUCTION = f"""\
# `summary.json`

Every run folder holds `summary.json`: everything measured so far, rebuilt from the folder's files
at the end of each invocation. This page lists every key; `summary.schema.json` beside it is the
same schema as a JSON Schema (draft 2020-12) for a program to validate against. Both are written
by `python -m sweep.edges.summary_doc` from the types the pipeline writes
(`sweep/core/sections.py`), so they say exactly what it writes.

**Format.** The first key, `format`, is `{SUMMARY_FORMAT}`; its number grows when a key changes
meaning or goes away (new keys may appear without it).

**Status.** Each verdict is a record `{{"status", "text"}}`; `status` (also gathered at the top
level, under `status`) is one of `passes`, `within_noise` (above the tolerance, but the seeds
cannot tell it from zero), `inconclusive` (an optimum not bracketed, nothing finite to judge)
and `fails`. A CI job gates on them, for example:

```bash
jq -e '.status.transfer == "passes" and .status.target != "fails"' runs/gpt_small/summary.json
```

**Units.** Learning rates and weight decays under a `log2_` name are log2 units (log2 −4.0 is
0.0625); a `regret` is a fraction of the loss (0.01 is 1 %), as are `band`s marked relative;
losses are nats per token (cross-entropy); FLOPs are training FLOPs (docs/methods.md §7), and a
`_vs_target` value is in target runs (1.0: one run of the target); per-width and per-rung maps
are keyed by the width or the rung as a string. Non-finite numbers are written as `NaN` and
`Infinity` (Python's `json`; a diverged run's regret is `Infinity`). A section appears once its
stage is complete.
"""


@functools.cache
def class_statement(cls: type) -> tuple[ast.ClassDef, list[str]] | None:
    """A class's statement and its source lines, parsed once (None where there is no source)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return None
    node = ast.parse(source).body[0]
    return (node, source.splitlines()) if isinstance(node, ast.ClassDef) else None


def field_comments(cls: type) -> dict[str, str]:
    """{field: the comment the code gives it}: the comment at the end of its line, else the
    comment lines just above it."""
    if (statement := class_statement(cls)) is None:
        return {}
    node, lines = statement
    out = {}
    for field in node.body:
        if not isinstance(field, ast.AnnAssign) or not isinstance(field.target, ast.Name):
            continue
        line = lines[field.lineno - 1]
        _, hash_, trailing = line.partition("  # ")
        if hash_:
            out[field.target.id] = trailing.strip()
            continue
        above, i = [], field.lineno - 2
        while i >= 0 and lines[i].strip().startswith("#"):
            above.insert(0, lines[i].strip().removeprefix("#").strip())
            i -= 1
        if above:
            out[field.target.id] = " ".join(above)
    return out


def own_doc(cls: type) -> str:
    """A class's own docstring ("" for a TypedDict without one: not dict's)."""
    doc = cls.__dict__.get("__doc__")
    return inspect.cleandoc(doc) if doc else ""


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """A field's type without NotRequired, and whether it was required."""
    if get_origin(hint) is NotRequired:
        return get_args(hint)[0], False
    return hint, True


def schema_of(hint: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of one type; each TypedDict once, under `$defs`."""
    hint, _ = _unwrap(hint)
    if is_typeddict(hint):
        name = hint.__name__
        if name not in defs:
            defs[name] = {}  # placed first: a type that refers to itself stops here
            fields = get_type_hints(hint, include_extras=True)
            defs[name] = {
                "type": "object",
                **({"description": doc} if (doc := own_doc(hint)) else {}),
                "properties": {
                    key: schema_of(value, defs)
                    | ({"description": comment} if (comment := comments(hint).get(key)) else {})
                    for key, value in fields.items()
                },
                "required": sorted(hint.__required_keys__),
                "additionalProperties": False,
            }
        return {"$ref": f"#/$defs/{name}"}
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return {"anyOf": [schema_of(arm, defs) for arm in get_args(hint)]}
    if origin is list:
        (item,) = get_args(hint)
        return {"type": "array", "items": schema_of(item, defs)}
    if origin is dict:
        _, value = get_args(hint)
        return {"type": "object", "additionalProperties": schema_of(value, defs)}
    if hint is float:  # JSON has one number type: an integer is a float too
        return {"type": "number"}
    if hint in SCALARS:
        return {"type": SCALARS[hint]}
    if hint is Any or hint is object:
        return {}
    raise TypeError(f"no JSON Schema for {hint!r}")


@functools.cache
def comments(cls: type) -> dict[str, str]:
    """A TypedDict's field comments, its TypedDict bases' included (its own win). The bases are
    read from its class statement: a TypedDict keeps no record of them at run time."""
    out: dict[str, str] = {}
    statement = class_statement(cls)
    module = sys.modules[cls.__module__]
    for base in statement[0].bases if statement else ():
        found = getattr(module, base.id, None) if isinstance(base, ast.Name) else None
        if found is not None and is_typeddict(found):
            out |= comments(found)
    return out | field_comments(cls)


def summary_schema() -> dict[str, Any]:
    defs: dict[str, Any] = {}
    root = schema_of(Summary, defs)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://musweep/summary.schema.json",
        "title": f"musweep summary.json ({SUMMARY_FORMAT})",
        **root,
        "$defs": defs,
    }


def type_words(hint: Any) -> str:
    """A type as the page writes it: `float`, `list[int]`, `map of Curve`, a section's name."""
    hint, _ = _unwrap(hint)
    if is_typeddict(hint):
        return f"[{hint.__name__}](#{hint.__name__.lower()})"
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(type_words(arm) for arm in get_args(hint))
    if origin is list:
        (item,) = get_args(hint)
        return f"list of {type_words(item)}"
    if origin is dict:
        _, value = get_args(hint)
        return f"map of {type_words(value)}"
    return "null" if hint is type(None) else getattr(hint, "__name__", str(hint))


def reachable(root: type) -> list[type]:
    """Every TypedDict `root` refers to, `root` first, each once, in the order met."""
    out, todo = [], [root]
    while todo:
        cls = todo.pop(0)
        if cls in out:
            continue
        out.append(cls)
        for hint in get_type_hints(cls).values():
            todo += [t for t in _types_in(hint) if is_typeddict(t) and t not in out]
    return out


def _types_in(hint: Any) -> list[Any]:
    hint, _ = _unwrap(hint)
    args = get_args(hint)
    return [hint] if not args else [t for arg in args for t in _types_in(arg)]


def summary_page() -> str:
    parts = [INTRODUCTION]
    for cls in reachable(Summary):
        parts.append(f"\n## {cls.__name__}\n")
        if doc := own_doc(cls):
            parts.append(f"\n{doc}\n")
        parts.append("\n| key | type | | meaning |\n|---|---|---|---|\n")
        notes = comments(cls)
        for key, hint in get_type_hints(cls, include_extras=True).items():
            _, required = _unwrap(hint)
            note, kind = (t.replace("|", "\\|") for t in (notes.get(key, ""), type_words(hint)))
            when = "" if required else "optional"
            parts.append(f"| `{key}` | {kind} | {when} | {note} |\n")
    return "".join(parts)


def rendered() -> dict[Path, str]:
    return {
        SCHEMA_FILE: json.dumps(summary_schema(), indent=1, ensure_ascii=False) + "\n",
        PAGE_FILE: summary_page(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only say whether they are stale")
    args = parser.parse_args(argv)
    texts = rendered()
    if args.check:
        stale = [p for p, text in texts.items() if not p.exists() or p.read_text() != text]
        for path in stale:
            print(f"{path} is out of date: python -m sweep.edges.summary_doc", file=sys.stderr)
        return 1 if stale else 0
    for path, text in texts.items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
