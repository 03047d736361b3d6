"""Schemathesis hooks (SCHEMATHESIS_HOOKS): about half the generated requests name the users,
memories and search words that seed.py created, so responses that carry real rows are
checked against the spec too; the other half keep schemathesis's own values.

DELETE operations are left alone, so the seeded rows live through the run. Reads the seed
file named by WM_SEED.
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis
from hypothesis import strategies as st

with open(os.environ["WM_SEED"], encoding="utf-8") as _f:
    SEED = json.load(_f)


def _destructive(ctx: Any) -> bool:
    operation = getattr(ctx, "operation", None)
    return operation is None or str(operation.method).upper() == "DELETE"


def _maybe(values: dict[str, Any] | None, choices: dict[str, list[Any]]) -> Any:
    """Sometimes swaps the generated value of each named parameter for a seeded one."""
    strategy = st.just(dict(values) if values else values)
    if not isinstance(values, dict):
        return strategy
    for name, seeded in choices.items():
        if name in values and seeded and isinstance(values[name], type(seeded[0])):

            def swap(current: dict[str, Any], name: str = name, seeded: list[Any] = seeded) -> Any:
                return st.one_of(st.just(current), st.sampled_from(seeded).map(lambda v: {**current, name: v}))

            strategy = strategy.flatmap(swap)
    return strategy


@schemathesis.hook
def flatmap_query(ctx: Any, query: dict[str, Any] | None) -> Any:
    if _destructive(ctx):
        return st.just(query)
    return _maybe(query, {"user_id": SEED["users"], "query": [SEED["query"]]})


@schemathesis.hook
def flatmap_path_parameters(ctx: Any, path_parameters: dict[str, Any] | None) -> Any:
    if _destructive(ctx):
        return st.just(path_parameters)
    return _maybe(path_parameters, {"user_id": SEED["users"], "id": SEED["memory_ids"]})
