"""Scopes, and who may do what: the one place that decides it.

The HPI names its scopes by resource type and interaction (SPEC.md §6), prefixed by a URL
(``SCOPE_PREFIX``, the HPI's by default):
``https://api.hip.digital.health.nz/fhir/system/PractitionerRole.r``. Inside the server a scope is its
short name, ``PractitionerRole.r``.

========================  =============================================================
interaction               allowed by (``T`` the resource type)
========================  =============================================================
read, vread, history      ``T.r``
search                    ``T.s``; PractitionerRole.s leaves inactive roles out
create                    ``T.c``
update                    ``T.u``
``$validate``             ``T.c`` (create mode, ``/T/$validate``) or ``T.u``
                          (update mode, ``/T/{id}/$validate``): what it checks
any of them               ``T.a`` (admin), which alone also shows confidential records
                          whole, sets or clears their label, moves a dormant identifier
                          (a merge) and reads Provenance
========================  =============================================================

Rules that depend on the data, checked by the services through ``ctx.access`` (wording in
:class:`..outcome.Msg`):

=====================================  ==========================================================
rule                                   needs
=====================================  ==========================================================
see a confidential record whole        ``T.a`` (T = PractitionerRole or Practitioner); without it
(label ``R`` or ``V``)                 the record is served redacted in every read path, and a
                                       search criterion on a hidden element does not match it
                                       (:mod:`..service.confidentiality`)
set or clear the label; update a       ``T.a``, else 403 (``LABEL_ADMIN_ONLY``,
confidential record                    ``CONFIDENTIAL_UPDATE``)
inactive roles in search results       ``PractitionerRole.a``; ``.s`` alone finds active roles only
``_include`` of a type                 its ``.r`` (or ``.a``), else 403 naming it
conditional create that finds a        the type's ``.r`` (or ``.a``): the answer is that record
record
add, remove or move a dormant          ``T.a`` (``MERGE_ADMIN_ONLY``), on create and update
identifier (a merge)
=====================================  ==========================================================

Organization and Location have only ``.r`` and ``.s`` at the HPI; their writes need this server's
``Organization.a`` and ``Location.a``.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from .. import audit
from ..outcome import Msg, RequestRejected, issue

HPI_SCOPE_PREFIX = "https://api.hip.digital.health.nz/fhir/system/"
ACTIONS: dict[str, str] = {
    "PractitionerRole": "rscua",
    "Practitioner": "rscua",
    "Organization": "rsa",
    "Location": "rsa",
}
ALL = frozenset(f"{rtype}.{a}" for rtype, actions in ACTIONS.items() for a in actions)
# The scope letter each interaction needs, besides admin.
INTERACTIONS: dict[str, str] = {"read": "r", "vread": "r", "history": "r", "search": "s", "create": "c",
                                "update": "u", "admin": ""}


def parse(text: str, prefix: str) -> frozenset[str]:
    """The short names of a space-separated list of scopes, each either short or with ``prefix``.

    :raises ValueError: one is not a scope this server knows.
    """
    names = set()
    for scope in text.split():
        name = scope[len(prefix):] if scope.startswith(prefix) else scope
        if name not in ALL:
            raise ValueError(f"unknown scope {scope!r}; known: {' '.join(sorted(ALL))}")
        names.add(name)
    return frozenset(names)


@dataclass(frozen=True)
class Access:
    """Who is asking, and what they may do: the token's scopes that the client still holds."""

    scopes: frozenset[str]
    client_id: str | None = None
    client_name: str | None = None
    key_id: str | None = None
    userid: str | None = None
    prefix: str = HPI_SCOPE_PREFIX

    @classmethod
    def system(cls, actor: str) -> Access:
        """The server's own commands (``fhir-server load``, first-start data): every scope."""
        return cls(ALL, client_name=actor)

    def admin(self, rtype: str) -> bool:
        return f"{rtype}.a" in self.scopes

    def allows(self, rtype: str, interaction: str) -> bool:
        letters = INTERACTIONS[interaction]
        return self.admin(rtype) or any(f"{rtype}.{a}" in self.scopes for a in letters)

    def require(self, rtype: str, interaction: str) -> None:
        """:raises RequestRejected: 403 naming the scope the request needs."""
        if not self.allows(rtype, interaction):
            letters = [a for a in INTERACTIONS[interaction] if a in ACTIONS[rtype]] or ["a"]
            needed = " or ".join(f"{self.prefix}{rtype}.{a}" for a in letters)
            raise RequestRejected(issue(Msg.SCOPE_REQUIRED, scope=needed))

    def require_admin(self, rtype: str, what: str) -> None:
        """:raises RequestRejected: 403: ``what`` needs ``rtype``'s admin scope."""
        if not self.admin(rtype):
            raise RequestRejected(issue(Msg.ADMIN_REQUIRED, what=what, scope=f"{self.prefix}{rtype}.a"))

    def require_admin_to(self, rtype: str, rule: Msg, expression: str | None = None, **values: t.Any) -> None:
        """:raises RequestRejected: 403 with ``rule`` (a catalogue entry with a ``{scope}``), naming
        ``rtype``'s admin scope, unless the caller has it."""
        if not self.admin(rtype):
            raise RequestRejected(issue(rule, expression, scope=f"{self.prefix}{rtype}.a", **values))


NO_ACCESS = Access(frozenset())

# What each route needs, by endpoint: (resource type, interaction). Routes not named need only a valid
# caller (conformance resources, Bundles, whose entries are checked one by one) or nothing (public ones).
_ROLE_ROUTES = {"create": "create", "read": "read", "vread": "vread", "update": "update", "search": "search",
                "type_history": "history", "instance_history": "history", "validate": "validate"}
_REFERENCE_OPS = ("create", "read", "vread", "update", "search")


def _route_table() -> dict[str, tuple[str, str]]:
    table = {f"practitioner_role.{name}": ("PractitionerRole", interaction) for name, interaction in _ROLE_ROUTES.items()}
    table.update({f"reference_data.{op}_{rtype}": (rtype, op) for op in _REFERENCE_OPS
                  for rtype in ("Practitioner", "Organization", "Location")})
    table.update({"plain_roles.create": ("PractitionerRole", "create"), "plain_roles.read": ("PractitionerRole", "read")})
    # A Provenance needs the admin scope of its target's type, which authorize reads off the request.
    table.update({f"provenance.{name}": (PROVENANCE, name) for name in ("read", "vread", "search")})
    return table


PROVENANCE = "Provenance"
ROUTES = _route_table()


def authorize(access: Access, endpoint: str | None, view_args: t.Mapping[str, t.Any],
              query: t.Iterable[tuple[str, str]] = ()) -> None:
    """Refuse (403) a route the caller's scopes do not reach, before anything else is done.

    A Provenance route's resource type is its target's: taken from the Provenance id
    (``view_args["pid"]``) or from each ``target`` parameter of ``query``. Where the request names
    no audited type (a malformed id, no target), PractitionerRole's admin scope is needed.
    """
    needed = ROUTES.get(endpoint or "")
    if not needed:
        return
    rtype, interaction = needed
    if interaction == "validate":
        # $validate answers what a create (or, of an instance, an update) would meet, stored values
        # included: it needs that interaction's scope.
        interaction = "update" if "role_id" in view_args else "create"
    if rtype != PROVENANCE:
        access.require(rtype, interaction)
        return
    named = [view_args["pid"]] if "pid" in view_args else [v for name, v in query if name == "target"]
    for target in sorted({audit.target_type(v) or "PractitionerRole" for v in named} or {"PractitionerRole"}):
        access.require_admin(target, PROVENANCE)
