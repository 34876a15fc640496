"""FHIRPath expressions for the elements that issues point at."""

from __future__ import annotations

import typing as t

ROLE = "PractitionerRole"


def extension(url: str, base: str = ROLE) -> str:
    return f"{base}.extension('{url}')"


def from_loc(root: str, loc: t.Iterable[str | int]) -> str:
    """Turn a pydantic error location such as ``('telecom', 0, 'rank')`` into ``Root.telecom[0].rank``.

    fhir.resources names a primitive's extension field ``x__ext``; FHIR JSON calls it ``_x``.
    Pydantic's own labels (``function-after[...]``, a root model's ``root``) are not elements: dropped.
    """
    out = root
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in part or "-" in part or part == "root":
            continue
        elif part.endswith("__ext"):
            out += f"._{part[:-5]}"
        else:
            out += f".{part}"
    return out
