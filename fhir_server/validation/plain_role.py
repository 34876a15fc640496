"""The fields of the plain-JSON practitioner-role API (reference/clinikehr/API.md), checked with a
marshmallow schema: types, required fields, the role and day enums, lengths, ``HH:mm`` times with
start before end, phone numbers (phonenumbers) and email addresses (email-validator, offline).

Every message comes from the catalogue; marshmallow's defaults are replaced, so that a client sees
the same words whichever rule fails. Unknown fields are refused rather than dropped, so nothing a
client sends is silently lost.
"""

from __future__ import annotations

import re
import typing as t

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from ..outcome import Issue, Msg, issue

ROLES = ("doctor", "nurse", "pharmacist", "admin", "consultant")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Numbers written without a country code are New Zealand ones.
PHONE_REGION = "NZ"
#: The most specialties one role lists, and the longest one (as organizationName and locationName).
MAX_SPECIALTIES = 20
MAX_SPECIALTY_LENGTH = 200
#: A day may be named once: seven at most.
MAX_DAYS = len(DAYS)


def _text_of(msg: Msg) -> str:
    return msg.value.text


_Messages = dict[str, str | list[t.Any] | dict[t.Any, t.Any]]  # marshmallow's error_messages
_STRING_MESSAGES: _Messages = {"required": _text_of(Msg.FIELD_REQUIRED), "null": _text_of(Msg.FIELD_NULL),
                               "invalid": _text_of(Msg.FIELD_NOT_STRING), "invalid_utf8": _text_of(Msg.FIELD_NOT_STRING)}
_LIST_MESSAGES: _Messages = {**_STRING_MESSAGES, "invalid": _text_of(Msg.FIELD_NOT_LIST)}


def _string(*, required: bool = False, max_length: int | None = None, nullable: bool | None = None,
            also: t.Sequence[t.Callable[[str], t.Any]] = ()) -> fields.String:
    """A string with some text; an optional field may also be sent as null, meaning "not given"."""
    checks: list[t.Callable[[str], t.Any]] = [_text]
    if max_length is not None:
        checks.append(validate.Length(max=max_length, error=_text_of(Msg.FIELD_TOO_LONG)))
    return fields.String(required=required, allow_none=not required if nullable is None else nullable,
                         validate=[*checks, *also], error_messages=_STRING_MESSAGES)


def _text(value: str) -> None:
    """What FHIR asks of a string: not blank, and no control characters but tab and line breaks."""
    if not value.strip():
        raise ValidationError(_text_of(Msg.FIELD_EMPTY))
    if any(ord(c) < 32 and c not in "\t\r\n" for c in value):
        raise ValidationError(_text_of(Msg.FIELD_CONTROL))


class _List(fields.List[str]):
    """A list of at most ``max_items``, or null ("not given"). Its length is checked before its items,
    so that a long list costs one message, not one per item; the Length validator says the same to
    the OpenAPI description."""

    def __init__(self, item: fields.String, max_items: int) -> None:
        self.max_items = max_items
        super().__init__(item, allow_none=True, validate=validate.Length(max=max_items, error=_text_of(Msg.FIELD_TOO_MANY)),
                         error_messages=_LIST_MESSAGES)

    def _deserialize(self, value: t.Any, attr: str | None, data: t.Any, **kwargs: t.Any) -> list[t.Any]:
        if isinstance(value, list) and len(value) > self.max_items:
            raise ValidationError(_text_of(Msg.FIELD_TOO_MANY).format(max=self.max_items))
        return super()._deserialize(value, attr, data, **kwargs)


def _one_of(choices: t.Sequence[str]) -> validate.OneOf:
    return validate.OneOf(choices, error=_text_of(Msg.FIELD_NOT_ONE_OF))


class _Whole(validate.Validator):
    """The whole string matches a regular expression; ``pattern`` is it as JSON Schema writes it, for
    the OpenAPI description."""

    error: str  # always given, unlike the base class's

    def __init__(self, regex: str, error: str) -> None:
        self._regex = re.compile(regex)
        self.pattern = f"^{regex}$"
        self.error = error

    def __call__(self, value: str) -> str:
        if not self._regex.fullmatch(value):
            raise ValidationError(self.error)
        return value


_time = _Whole(r"([01][0-9]|2[0-3]):[0-5][0-9]", _text_of(Msg.FIELD_TIME))


def _phone(value: str) -> None:
    try:
        number = phonenumbers.parse(value, PHONE_REGION)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise ValidationError(_text_of(Msg.FIELD_PHONE))


def _email(value: str) -> None:
    try:
        validate_email(value, check_deliverability=False)  # offline: no DNS lookups
    except EmailNotValidError as e:
        raise ValidationError(_text_of(Msg.FIELD_EMAIL).format(reason=e)) from None


class PractitionerRoleRequest(Schema):
    """The body of ``POST /v1/practitioner-roles``."""

    class Meta:
        unknown = RAISE

    error_messages = {"unknown": _text_of(Msg.FIELD_UNKNOWN)}

    practitionerId = _string(required=True, max_length=64)
    role = _string(required=True, max_length=100, also=[_one_of(ROLES)])
    organizationName = _string(max_length=200)
    specialty = _List(_string(nullable=False, max_length=MAX_SPECIALTY_LENGTH), MAX_SPECIALTIES)
    locationName = _string(max_length=200)
    phone = _string(also=[_phone])
    email = _string(also=[_email])
    availableDays = _List(_string(nullable=False, also=[_one_of(DAYS)]), MAX_DAYS)
    availableStartTime = _string(also=[_time])
    availableEndTime = _string(also=[_time])

    @validates_schema(skip_on_field_errors=False)  # with the field errors, not after them
    def _start_before_end(self, data: dict[str, t.Any], **kwargs: t.Any) -> None:
        start, end = data.get("availableStartTime"), data.get("availableEndTime")
        if start and end and start >= end:  # HH:mm strings order as times do
            raise ValidationError(_text_of(Msg.FIELD_START_AFTER_END), field_name="availableStartTime")


_SCHEMA = PractitionerRoleRequest()


def load_plain_role(doc: dict[str, t.Any]) -> tuple[dict[str, t.Any], list[Issue]]:
    """The request's fields (None for those not sent), or an issue per failing field, named as the
    client wrote it (``availableDays[1]``)."""
    try:
        data = _SCHEMA.load(doc)
    except ValidationError as e:
        return {}, [issue(Msg.FIELD_INVALID, name, message=text) for name, text in _flatten(e.messages)]
    return {name: data.get(name) for name in _SCHEMA.fields}, []


def _flatten(messages: t.Any, path: str = "") -> t.Iterator[tuple[str, str]]:
    """marshmallow's nested ``{field: [text] | {index: [text]}}`` as (``field[index]``, text) pairs."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            yield from _flatten(value, f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key)))
    elif isinstance(messages, list):
        for text in messages:
            yield from _flatten(text, path)
    else:
        yield path, str(messages)
