"""Contact-point rules of an HPI PractitionerRole (SPEC.md §3.6)."""

from __future__ import annotations

import re
import typing as t

from ..outcome import Issue, Msg, issue
from .dates import check_period, is_current
from .fhirpath import ROLE

PHONE_SYSTEMS = {"phone", "sms", "fax", "pager"}
# E.164-style digits, optionally grouped by single spaces as HISO shows them ("64 4 232nnnn").
_PHONE = re.compile(r"\+?[0-9]+( [0-9]+)*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def is_valid_phone(value: str) -> bool:
    return _PHONE.fullmatch(value) is not None and 5 <= sum(c.isdigit() for c in value) <= 20


def is_valid_email(value: str) -> bool:
    """"local-part@domain-part", at most 256 characters, any UTF-8 but control characters."""
    local, at, domain = value.rpartition("@")
    return bool(local and at and domain) and "@" not in local and len(value) <= 256 and not _CONTROL.search(value)


def _comparable(contact: dict[str, t.Any]) -> tuple[t.Any, ...]:
    value = str(contact.get("value", ""))
    value = value.replace(" ", "") if contact.get("system") in PHONE_SYSTEMS else value.casefold()
    return contact.get("system"), value, contact.get("use")


def check_telecom(telecom: list[dict[str, t.Any]], today: str) -> list[Issue]:
    issues: list[Issue] = []
    active: set[tuple[t.Any, ...]] = set()
    for i, contact in enumerate(telecom):
        path = f"{ROLE}.telecom[{i}]"
        value, system = contact.get("value"), contact.get("system")
        if not value:
            issues.append(issue(Msg.CONTACT_VALUE_REQUIRED, f"{path}.value"))
        elif not system:
            issues.append(issue(Msg.CONTACT_SYSTEM_REQUIRED, f"{path}.system"))
        elif system in PHONE_SYSTEMS and not is_valid_phone(value):
            issues.append(issue(Msg.PHONE_FORMAT, f"{path}.value"))
        elif system == "email" and not is_valid_email(value):
            issues.append(issue(Msg.EMAIL_FORMAT, f"{path}.value"))
        period = contact.get("period")
        issues += check_period(period, f"{path}.period", Msg.CONTACT_PERIOD_FORMAT, Msg.CONTACT_PERIOD_ORDER)
        # "same system, value and use as another existing active contactpoint for that pracRole record"
        if value and is_current(period, today):
            key = _comparable(contact)
            if key in active:
                issues.append(issue(Msg.CONTACT_DUPLICATE, path))
            active.add(key)
    return issues


def assign_ranks(telecom: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """"When rank is not supplied it will be assigned the next lowest rank within the PracRole telecom
    contactpoints": each unranked contact, in order, gets one more than the highest rank so far."""
    highest = max((c["rank"] for c in telecom if "rank" in c), default=0)
    ranked = []
    for contact in telecom:
        if "rank" not in contact:
            highest += 1
            contact = {**contact, "rank": highest}
        ranked.append(contact)
    return ranked
