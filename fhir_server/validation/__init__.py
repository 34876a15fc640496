"""Pure checks from a resource (a dict) to a list of Issues: no Flask, no database."""

from .base import check_base, compile_base, without_overlap
from .json_body import parse_json
from .profile import check_profile
from .references import Lookup, Target, check_references, point_at_live_records
from .rules import check_required, check_role_period
from .structure import check_structure
from .telecom import assign_ranks, check_telecom

__all__ = [
    "Lookup",
    "Target",
    "assign_ranks",
    "check_base",
    "check_profile",
    "check_references",
    "check_required",
    "check_role_period",
    "check_structure",
    "check_telecom",
    "compile_base",
    "parse_json",
    "point_at_live_records",
    "without_overlap",
]
