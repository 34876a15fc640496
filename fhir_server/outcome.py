"""OperationOutcomes: the one catalogue of every message the server sends, and the errors that carry them.

Every message string lives in :data:`CATALOGUE` and nowhere else. HPI messages are copied verbatim
from the IG (typos and a trailing space included, see ``SPEC.md`` §3); where the IG is silent the
entry says so in its ``note``. A rule names an entry and adds the FHIRPath of the element::

    issue(Msg.PRACTITIONER_REQUIRED, "PractitionerRole.practitioner")

Errors, all free of Flask so that any layer can raise them::

    FhirError                  carries a list of Issues; its status is the first issue's
    ├── RequestRejected        the request or resource is wrong (4xx)
    └── StoreUnavailable       the database cannot be reached, or did not confirm a write (503)
"""

from __future__ import annotations

import enum
import typing as t
from dataclasses import dataclass

HPI_CODE_SYSTEM = "https://standards.digital.health.nz/ns/hip-operation-outcome-details-code"

# HPI error codes with the displays the HPI compliance pages use (SPEC.md §3.0).
EM07201 = ("EM07201", "Required value missing")
EM07208 = ("EM07208", "Value is invalid")
EM07240 = ("EM07240", "Resource not found")
EM07106 = ("EM07106", "Record version provided is out of date. The record cannot be updated")
EM01100 = ("EM01100", "System error occured while processing the request")


@dataclass(frozen=True)
class Entry:
    """One catalogue entry: the HTTP status, FHIR issue code, message and HPI code of a problem."""

    status: int
    code: str
    text: str
    hpi: tuple[str, str] | None = None
    severity: str = "error"
    note: str = ""


class Msg(enum.Enum):
    """Every problem the server reports. ``{name}`` placeholders are filled by :func:`issue`."""

    # Request and transport (DESIGN.md "Status codes"); not HPI wording.
    MALFORMED_JSON = Entry(400, "structure", "Request body is not valid JSON: {detail}")
    NOT_AN_OBJECT = Entry(400, "structure", "Request body must be a JSON object")
    TOO_DEEP = Entry(400, "structure", "Request body is nested more than {limit} levels deep")
    # Sizes and numbers (validation/json_body.py, exact_json.py): limits of this server, not FHIR rules.
    TOO_MANY_ITEMS = Entry(400, "too-costly", "{element} has {count} items; this server takes at most {limit} in one array",
                           note="MAX_ARRAY_ITEMS; a profile may allow fewer (TOO_MANY, 422)")
    STRING_TOO_LONG = Entry(400, "too-costly", "{element} is {length} characters long; this server takes at most {limit}",
                            note="MAX_STRING_LENGTH; FHIR R4 allows strings of up to 1 MB")
    NUMBER_NOT_STORABLE = Entry(400, "value", "The number {number} cannot be kept exactly: this server holds at most 34 "
                                "significant digits and an exponent of the last digit from -6176 to 6111", note="BSON Decimal128")
    NUMBER_SPELLING = Entry(400, "value", "The number {number} would be returned as {spelling}: write decimals without an "
                            "exponent (0.0015), or with one only for a whole number with significant trailing zeros (1.50E+3)",
                            note="one spelling per value and precision, so that what is sent is what is served")
    UNSAFE_KEY = Entry(400, "structure", "Property name {key!r} is not allowed: names must not start with '$' or contain '.' or NUL")
    UNSUPPORTED_MEDIA_TYPE = Entry(415, "not-supported", "Content-Type must be application/fhir+json or application/json")
    TOO_LARGE = Entry(413, "too-costly", "The request body was too big for the server to accept", note="IG status-table text")
    WRONG_RESOURCE_TYPE = Entry(400, "structure", "resourceType must be {expected}")
    STRUCTURE = Entry(400, "structure", "{reason}")
    RANK_NOT_POSITIVE = Entry(422, "processing", "Contact point rank must be 1 or more; rank 0 is invalid",
                              note="IG: 'Rank 0 is invalid', one of its contact rules (422 as the others), no message")
    NULL_VALUE = Entry(400, "structure", "null is not a valid FHIR value")
    CONTROL_CHARACTER = Entry(400, "structure", "A FHIR string may not contain control characters other than tab, "
                              "carriage return and line feed", note="FHIR R4 datatypes.html#string")
    WRONG_JSON_TYPE = Entry(400, "structure", "Expected a JSON {expected}, got {got}")
    HTTP_ERROR = Entry(400, "processing", "{description}", note="other HTTP errors; the status is the error's own")
    UNKNOWN_ROUTE = Entry(404, "not-found", "No route for {method} {path}")
    METHOD_NOT_ALLOWED = Entry(405, "not-supported", "HTTP method {method} is not allowed on {path}")
    NOT_FOUND = Entry(404, "processing", "Invalid id: {id}", EM07240, note="IG: “Invalid id: ”, id appended")
    VERSION_NOT_FOUND = Entry(404, "not-found", "{type}/{id} has no version {vid}")
    NOT_ACCEPTABLE = Entry(406, "not-supported", "Only JSON is supported: ask for application/fhir+json or application/json",
                           note="IG: 'Only Json is supported by this implementation.'")
    FHIR_VERSION_NOT_SERVED = Entry(406, "not-supported", "This server serves FHIR version {version} only: ask with "
                                    "fhirVersion={version} or without fhirVersion", note="R4 http.html#version-parameter")
    FHIR_VERSION_NOT_TAKEN = Entry(415, "not-supported", "This server takes FHIR version {version} only: send "
                                   "fhirVersion={version} or no fhirVersion", note="R4 http.html#version-parameter")
    NOT_DELETABLE = Entry(405, "not-supported", "A PractitionerRole record cannot be deleted; end it with a period end date "
                          "and a PractitionerRole-status-reason (enteredInError or duplicate to withdraw it)",
                          note="IG businessView: 'A practitionerRole record cannot be deleted.'")
    VALIDATE_MODE_INVALID = Entry(400, "value", "$validate mode {mode!r} is not supported here: use create on "
                                  "/PractitionerRole/$validate, update on /PractitionerRole/{{id}}/$validate")
    VALIDATE_RESOURCE_REQUIRED = Entry(400, "required", "$validate needs exactly one 'resource' parameter")
    OPERATION_OK = Entry(200, "informational", "{what}", severity="information")
    OPERATION_PARAM_REQUIRED = Entry(400, "required", "{operation} needs the parameter {name}")
    CANONICAL_UNKNOWN = Entry(404, "not-found", "{type} {url} is not known here")
    CODE_NOT_IN_CODE_SYSTEM = Entry(200, "code-invalid", "{code!r} is not a code of the code system {code_system}",
                                    severity="information", note="a CodeSystem $validate-code message")
    DISPLAY_WRONG = Entry(200, "invalid", "The display of {code!r} is {display!r}", severity="information",
                      note="a $validate-code message, not an error of the request")
    DB_UNAVAILABLE = Entry(503, "transient", "The database is unavailable; retry shortly")
    DB_OUTCOME_UNKNOWN = Entry(503, "transient", "The database did not confirm the change, which may have been applied: read it "
                               "back, or retry with the same Idempotency-Key or If-None-Exist")
    KEY_IN_FLIGHT = Entry(503, "transient", "A concurrent request is storing a role with the same practitioner, organisation, "
                          "facility and role code; retry shortly")
    IDEMPOTENCY_KEY_INVALID = Entry(400, "value", "Idempotency-Key must be 1 to {max} visible ASCII characters")
    IDEMPOTENCY_KEY_REUSED = Entry(422, "conflict", "This Idempotency-Key was used within 24 hours for a different request; "
                                   "use a new key for a new request")
    IDEMPOTENCY_IN_PROGRESS = Entry(409, "conflict", "A request with this Idempotency-Key is still being processed; retry shortly")
    INTERNAL = Entry(500, "exception", "System error occured while processing the request", EM01100)
    # The serving front (fhir_server/serving), before the request reaches the app; not HPI wording.
    BAD_HTTP = Entry(400, "structure", "The request is not valid HTTP/1.1: {reason}",
                     note="the status is the parser's: 400, or 501 for a Transfer-Encoding other than chunked")
    HTTP_VERSION = Entry(505, "not-supported", "HTTP/{version} is not supported: send HTTP/1.1")
    BAD_HTTP_FRAMING = Entry(400, "structure", "The request is not valid HTTP/1.1: both Transfer-Encoding and Content-Length")
    HEADERS_TOO_LARGE = Entry(431, "too-costly", "The request line and headers must be under {limit} bytes in at most "
                              "{fields} header fields")
    HEADER_TIMEOUT = Entry(408, "timeout", "The request line and headers did not arrive within {seconds} s")
    BODY_TIMEOUT = Entry(408, "timeout", "The request body did not arrive within {seconds} s")
    TOO_MANY_CHUNKS = Entry(413, "too-costly", "A chunked request body may come in at most {limit} chunks; send it in "
                            "larger chunks, or with Content-Length")
    NOT_READY_DATABASE = Entry(503, "transient", "Not ready: the database did not answer within {seconds} s")
    NOT_READY_SCHEMA = Entry(503, "transient", "Not ready: the database schema is at version {found}, this server "
                             "needs version {needed} (fhir-server migrate)")
    METRICS_TOKEN_REQUIRED = Entry(401, "login", "The metrics need Authorization: Bearer with the metrics token")
    BODY_BUFFER_FULL = Entry(503, "transient", "The server is receiving too many request bodies at once; retry shortly")
    # Hosts and proxies (http/hosts.py), before any other check; the host is not repeated back.
    HOST_NOT_ALLOWED = Entry(400, "value", "This server does not answer to the host this request names (its Host "
                             "header, or X-Forwarded-Host from a trusted proxy)", note="ALLOWED_HOSTS")

    # Authentication (SPEC.md §6), verbatim.
    FORBIDDEN = Entry(403, "forbidden", "Forbidden")
    MISSING_USERID = Entry(401, "processing", "Authentication: missing userid header")
    UNAUTHORIZED = Entry(401, "login", "Unauthorized", note="the WWW-Authenticate header says why")
    # Authorization (auth/scopes.py). Not IG wording: the IG's 403 says only "Forbidden".
    SCOPE_REQUIRED = Entry(403, "forbidden", "Forbidden: this request needs the scope {scope}")
    ADMIN_REQUIRED = Entry(403, "forbidden", "Forbidden: {what} needs the scope {scope}")
    # Data-dependent rules (service/confidentiality.py, reference_data.py; listed in auth/scopes.py).
    CONFIDENTIAL_UPDATE = Entry(403, "forbidden", "Forbidden: {type}/{id} is confidential: updating it needs the scope {scope}")
    LABEL_ADMIN_ONLY = Entry(403, "forbidden", "Forbidden: setting or clearing the confidentiality label (meta.security "
                             "v3-Confidentiality R or V) of a {type} needs the scope {scope}")
    MERGE_ADMIN_ONLY = Entry(403, "forbidden", "Forbidden: adding, removing or moving a dormant identifier (use old) of a "
                             "{type} is a merge, which needs the scope {scope}")
    INVALID_USERID = Entry(401, "processing", "Authentication: invalid userid header: it must be 1 to {limit} printable "
                           "ASCII characters, not starting or ending with a space", note="IG: 'Preferably the hpi-person-id'")
    USER_AGENT_MISSING = Entry(400, "required", "A User-Agent header naming the application and its version is required",
                               note="SPEC.md §6: mandatory")

    # Rate limits, on every authenticated route (not HPI wording).
    THROTTLED = Entry(429, "throttled", "Rate limit exceeded: this API key may make {limit}; retry in {seconds} s")

    # The plain-JSON API (/v1/practitioner-roles): answered in its own envelope, each field problem
    # under the field's name. Marshmallow's own messages are replaced by these (see validation/plain_role).
    API_KEY_MISSING = Entry(401, "login", "An x-api-key header is required")
    API_KEY_UNKNOWN = Entry(403, "forbidden", "The API key is not valid")
    PLAIN_MEDIA_TYPE = Entry(415, "not-supported", "Content-Type must be application/json")
    PLAIN_NOT_FOUND = Entry(404, "not-found", "No practitioner role {id} was created through this API")
    FIELD_INVALID = Entry(422, "invalid", "{message}", note="the text is one of the FIELD_* texts below")
    FIELD_REQUIRED = Entry(422, "required", "Missing data for required field.")
    FIELD_NULL = Entry(422, "required", "Field may not be null.")
    FIELD_UNKNOWN = Entry(422, "structure", "Unknown field.")
    FIELD_NOT_STRING = Entry(422, "value", "Not a valid string.")
    FIELD_NOT_LIST = Entry(422, "value", "Not a valid list.")
    FIELD_EMPTY = Entry(422, "value", "Must not be empty.")
    FIELD_CONTROL = Entry(422, "value", "Must not contain control characters.")
    FIELD_TOO_LONG = Entry(422, "value", "Longer than maximum length {max}.")
    FIELD_TOO_MANY = Entry(422, "value", "Must have at most {max} items.")
    FIELD_NOT_ONE_OF = Entry(422, "code-invalid", "Must be one of: {choices}.")
    FIELD_TIME = Entry(422, "value", "Not a valid 24-hour time HH:mm (such as 08:00).")
    FIELD_START_AFTER_END = Entry(422, "invariant", "Must be before availableEndTime.")
    FIELD_PHONE = Entry(422, "value", "Not a valid phone number.")
    FIELD_EMAIL = Entry(422, "value", "Not a valid email address: {reason}")
    FIELD_NO_PRACTITIONER = Entry(422, "not-found", "No practitioner with this id.")

    # Versions and conditional requests (SPEC.md §3.2, §3.7; FHIR http.html).
    VERSION_CONFLICT = Entry(409, "conflict", "Resource conflict, the version provided for the resource is not the current version",
                             EM07106, note="IG status-table text for 409 with the EM07106 coding")
    IF_MATCH_REQUIRED = Entry(428, "required", "An update needs an If-Match header with the version being updated, "
                              "e.g. If-Match: W/\"1\"", note="IG: if-Match mandatory on update; no status given")
    IF_MATCH_INVALID = Entry(400, "value", "If-Match must name one version: W/\"n\", \"n\" or n")
    ID_MISMATCH = Entry(400, "value", "The resource id must equal the id in the URL, {url_id}")
    IDENTIFIER_IN_USE = Entry(422, "duplicate", "Identifier {identifier} is already used by {key}")
    CONDITION_INVALID = Entry(400, "value", "If-None-Exist must be identifier=[system|]value")
    CONDITION_NOT_IN_RESOURCE = Entry(400, "value", "If-None-Exist names identifier {identifier}, which the resource does not have")
    CONDITION_AMBIGUOUS = Entry(412, "multiple-matches", "If-None-Exist matches {count} records")

    # Batch and transaction Bundles (FHIR http.html#transaction).
    BUNDLE_TYPE = Entry(400, "invalid", "POST / takes a Bundle of type batch or transaction")
    BUNDLE_TOO_LARGE = Entry(413, "too-costly", "The Bundle has {count} entries; this server takes at most {limit} in one request")
    BUNDLE_ENTRY_INVALID = Entry(400, "invalid", "Bundle.entry[{index}]: {reason}")
    TRANSACTION_FAILED = Entry(400, "processing", "Bundle.entry[{index}] ({method} {url}) failed with {status}; "
                               "nothing of the transaction was stored", note="the status is the failing entry's")
    TRANSACTION_CONFLICT = Entry(409, "conflict", "The transaction met a concurrent change and was rolled back; nothing was "
                                 "stored. Send it again")
    TRANSACTIONS_UNSUPPORTED = Entry(501, "not-supported", "This server's database does not support multi-document "
                                     "transactions (a standalone MongoDB); nothing was stored. Send the entries as a batch Bundle",
                                     note="501: the server lacks the function; the request itself is fine")
    TRANSACTION_OUTCOME_UNKNOWN = Entry(503, "transient", "The transaction was sent for commit but its result is unknown: it "
                                        "may have been stored. Read the records before sending it again")
    TRANSACTION_DEADLINE = Entry(503, "timeout", "The transaction did not finish within the request's limit of {seconds} s "
                                 "and was rolled back; nothing was stored")
    BUNDLE_NESTED = Entry(400, "not-supported", "Bundle.entry[{index}]: request.url {url!r} is the batch/transaction "
                          "endpoint itself (POST [base]); Bundles do not nest")
    BUNDLE_DEADLINE = Entry(503, "timeout", "Bundle.entry[{index}] was not run: the request reached its limit of {seconds} s; "
                            "send the entries not run again")
    RESPONSE_TOO_LARGE = Entry(413, "too-costly", "Bundle.entry[{index}] was not answered: the answer would pass "
                               "{limit} bytes; ask for less in one request")
    TRANSACTION_TOO_LARGE = Entry(413, "too-costly", "The transaction's answer would pass {limit} bytes; it was rolled "
                                  "back and nothing was stored. Ask for less in one request")
    REFERENCE_UNRESOLVED = Entry(412, "processing", "The conditional reference {reference} matches {count} records; it must match one")
    BUNDLE_ENTRY_PLAIN_API = Entry(400, "invalid", "Bundle.entry[{index}]: request.url must be a FHIR interaction; the plain-JSON "
                                   "API answers only requests of its own")
    BUNDLE_TOO_MANY_CONDITIONS = Entry(400, "invalid", "Bundle.entry[{index}]: at most {limit} distinct conditional references "
                                       "may be resolved for one entry")

    # Search (SPEC.md §3.4; FHIR search.html).
    SEARCH_PRACTITIONER_REQUIRED = Entry(422, "processing", "Practitioner required", EM07201)
    SEARCH_PARAM_UNKNOWN = Entry(400, "not-supported", "Unknown search parameter {name!r} for {type}")
    SEARCH_INCLUDE_UNKNOWN = Entry(400, "not-supported", "Unsupported _include {value!r} for {type}")
    SEARCH_MODIFIER_UNSUPPORTED = Entry(400, "not-supported", "Search parameter {name!r}: modifier not supported")
    SEARCH_VALUE_INVALID = Entry(400, "value", "Invalid value {value!r} for search parameter {name!r}")
    SEARCH_OFFSET_TOO_LARGE = Entry(400, "too-costly", "_offset may be at most {limit}; narrow the search instead")
    SEARCH_TOO_BROAD = Entry(400, "too-costly", "This search matches more than {limit} records before {params} can be applied; "
                             "narrow it with other parameters")
    SEARCH_NOT_SELECTIVE = Entry(400, "too-costly", "A search of {type} needs identifier, _id or a _lastUpdated range (not ne): "
                                 "without one it would read every {type}")
    PAGE_TOKEN_INVALID = Entry(400, "value", "Invalid _page {value!r}: follow the next link of a page this server gave")
    TOTAL_INVALID = Entry(400, "value", "Invalid _total {value!r}: none, estimate or accurate")
    SEARCH_REVINCLUDE_UNKNOWN = Entry(400, "not-supported", "Unsupported _revinclude {value!r} for {type}")
    SEARCH_FILTER_UNSUPPORTED = Entry(400, "not-supported", "Search parameter {name!r} is not supported: this server does not "
                                      "apply _has, chained or other such filters, and ignoring one would widen the result")
    SEARCH_IGNORED = Entry(200, "not-supported", "{name}={value!r} is not supported for {type} and was ignored",
                           severity="warning", note="lenient handling (no Prefer: handling=strict)")
    SEARCH_COUNT_CUT = Entry(200, "too-costly", "_count={value} is more than this server serves in a page: cut to {limit}",
                             severity="warning")
    SEARCH_REVINCLUDE_CUT = Entry(200, "too-costly", "More records point at this page's matches than _revinclude includes "
                                  "({limit}): narrow the search or page with a smaller _count", severity="warning")
    HISTORY_OFFSET_UNSUPPORTED = Entry(400, "not-supported", "History pages by _page, not _offset: follow the next link")
    HISTORY_PARAM_UNSUPPORTED = Entry(400, "not-supported", "History does not take {name!r}: it takes _since, _at, _count "
                                      "and _total", note="refused whatever Prefer: handling says: ignoring it could widen the answer")
    HISTORY_SINCE_INVALID = Entry(400, "value", "Invalid _since {value!r}: one instant with seconds and a time zone, "
                                  "e.g. 2026-01-31T09:30:00Z")
    HISTORY_AT_INVALID = Entry(400, "value", "Invalid _at {value!r}: one date or date-time, e.g. 2026-01-31 or "
                               "2026-01-31T09:30:00Z, without a prefix")
    HISTORY_AT_ONE_ROLE = Entry(400, "not-supported", "_at is supported in the history of one PractitionerRole, not across "
                                "all of them: ask PractitionerRole/[id]/_history?_at=…, or use _since")
    SEARCH_TARGET_REQUIRED = Entry(400, "required", "A search of Provenance needs one target: Type/id or Type/id/_history/n "
                                   "of a {types}")

    # Create rules (SPEC.md §3.1), verbatim.
    PRACTITIONER_REQUIRED = Entry(422, "processing", "hpi-person-id is required", EM07201)
    PRACTITIONER_INVALID = Entry(422, "processing", "hpi-person-id invalid", EM07208)
    ORGANIZATION_OR_FACILITY_REQUIRED = Entry(422, "processing", "hpi-organization-id or hpi-facility-id is required", EM07201)
    DUPLICATE = Entry(422, "processing", "Resource validation error: duplicate", EM07201,
                      note="the compliance page codes it EM07201 'Required value missing' (sic)")
    STATUS_REASON_REQUIRED = Entry(422, "processing", "PractitionerRole-status-reason is required", EM07201)
    # Update rules (SPEC.md §3.2), verbatim.
    NOT_UPDATABLE = Entry(422, "processing", "A PractitionerRole update request may only update telecom, messaging-address, "
                          "period, and practitionerRole-status-reason.")
    ROLE_ID_REQUIRED = Entry(422, "processing", "The PractitionerRole id is required", EM07201,
                             note="IG: 'A PractitionerRole update must contain: The PractitionerRole id'")
    ROLE_IDENTIFIER_REQUIRED = Entry(422, "processing", "The PractitionerRole identifier is required", EM07201,
                                     note="IG: 'A PractitionerRole update must contain: … The PractitionerRole identifier'")
    # Where the IG gives no message (SPEC.md §3.1, §7).
    ORGANIZATION_INVALID = Entry(422, "processing", "hpi-organisation-id invalid", EM07208, note="not IG wording")
    FACILITY_INVALID = Entry(422, "processing", "hpi-facility-id invalid", EM07208, note="not IG wording")
    ROLE_CODE_REQUIRED = Entry(422, "processing", "PractitionerRole code is required", EM07201,
                               note="IG has no create message; its old update page said 'PractitionerRole code requird'")
    PERIOD_END_REQUIRED = Entry(422, "processing", "Period end date is required when a PractitionerRole-status-reason is supplied",
                                EM07201, note="IG compliance case HPI-PR-Update-error-2 has no message")

    # Period (SPEC.md §3.5), verbatim.
    PERIOD_FORMAT = Entry(422, "processing", "Period is not valid; format must be yyyy-mm-dd")
    PERIOD_ORDER = Entry(422, "processing", "Period start date must be less than, or equal to end date")

    # Contact points (SPEC.md §3.6), verbatim, the trailing space of the last one included.
    CONTACT_DUPLICATE = Entry(422, "processing", "The contact point you are creating is a duplicate of another on this record")
    PHONE_FORMAT = Entry(422, "processing", "The mobile phone format is invalid")
    EMAIL_FORMAT = Entry(422, "processing", "The email format is invalid")
    CONTACT_PERIOD_FORMAT = Entry(422, "processing", "Contact period is invalid; format must be yyyy-mm-dd")
    CONTACT_PERIOD_ORDER = Entry(422, "processing",
                                 "Contact period start date must be less than or equal to a contact point period end date ")
    CONTACT_VALUE_REQUIRED = Entry(422, "processing", "Contact point value is required", EM07201, note="not IG wording")
    CONTACT_SYSTEM_REQUIRED = Entry(422, "processing", "Contact point system is required when a value is given", EM07201,
                                    note="FHIR invariant cpt-2")

    # Profiles (profiles/, SPEC.md §1): cardinality, fixed values, bindings, types, slices. Not IG wording.
    PROFILE_UNKNOWN = Entry(422, "processing", "Profile {profile} is not one this server knows for {type}; it knows {known}", EM07208)
    PROHIBITED = Entry(422, "processing", "{element} is not allowed by profile {profile}", EM07208)
    TOO_MANY = Entry(422, "processing", "{element} may occur at most {max} time(s)", EM07208)
    REQUIRED = Entry(422, "processing", "{element} is required", EM07201)
    TOO_FEW = Entry(422, "processing", "{element} must occur at least {min} time(s)", EM07201)
    CODE_NOT_IN_VALUE_SET = Entry(422, "code-invalid", "{code!r} is not a code of the value set {value_set}", EM07208)
    FIXED_VALUE = Entry(422, "value", "{element} must be {value}", EM07208)
    TYPE_NOT_ALLOWED = Entry(422, "processing", "{element} is not allowed here; use {allowed}", EM07208)
    REFERENCE_TARGET = Entry(422, "processing", "{element} must refer to a {allowed}", EM07208)
    SLICE_UNMATCHED = Entry(422, "processing", "{element} allows only the entries its profile defines (closed slicing)", EM07208)
    SLICE_ORDER = Entry(422, "processing", "{element}: entries the profile does not define must come after those it does",
                        EM07208, note="slicing rules openAtEnd")

    # FHIR R4's own rules (validation/base.py), read from the official R4 4.0.1 StructureDefinitions. Not IG wording.
    BASE_CARDINALITY = Entry(422, "structure", "{element} must occur {min}..{max} time(s) (FHIR R4); it occurs {count} time(s)", EM07208)
    BASE_BINDING = Entry(422, "code-invalid", "{code!r} is not a code FHIR R4 allows for {element}: use one of {codes}", EM07208)
    BASE_INVARIANT = Entry(422, "invariant", "FHIR R4 rule {key} failed: {human}", EM07208)
    MODIFIER_UNKNOWN = Entry(422, "not-supported", "Modifier extension {url} is not known to this server, which therefore "
                             "cannot process the resource (FHIR R4: what changes the meaning must be understood)", EM07208)
    IMPLICIT_RULES = Entry(422, "not-supported", "implicitRules is not supported: this server cannot process a resource "
                           "made under rules it does not know (FHIR R4 resource.html#implicitRules)", EM07208)

    # Reference data (Practitioner, Organization, Location) maintained over FHIR (SPEC.md §2, §4). Not IG
    # wording: the HPI offers no such writes. {name} is the type's HPI identifier, e.g. hpi-person-id.
    # Not found, version and condition problems, and an identifier another record holds, use the entries above.
    REFERENCE_ID_REQUIRED = Entry(422, "processing", "An official {name} identifier is required: it is the {type}'s id", EM07201)
    REFERENCE_ID_TOO_MANY = Entry(422, "processing", "A {type} has one official {name} identifier; a former (dormant) one has use old",
                                  EM07208)
    REFERENCE_ID_INVALID = Entry(422, "processing", "{name} invalid: {value!r}", EM07208,
                                 note="as 'hpi-person-id invalid', with the value")
    REFERENCE_ID_USE = Entry(422, "processing", "A {name} identifier must have use official (the live id) or old (a dormant id)",
                             EM07208)
    REFERENCE_ID_CHANGED = Entry(422, "processing", "The official {name} identifier is the {type}'s id and cannot change from {id}",
                                 EM07208)

    # Loading reference data from files (``fhir-server load``). Not IG wording. A line or entry that is not
    # a Practitioner, Organization or Location gets WRONG_RESOURCE_TYPE above.
    LOAD_NOT_JSON = Entry(400, "structure", "Not valid JSON: {detail}")


@dataclass(frozen=True)
class Issue:
    """One problem found: a catalogue entry, the FHIRPath of the element, and the message's values.
    ``also``: more elements the problem is about, where it names several (either of two, say)."""

    msg: Msg
    expression: str | None = None
    values: tuple[tuple[str, t.Any], ...] = ()
    also: tuple[str, ...] = ()

    @property
    def status(self) -> int:
        return self.msg.value.status

    @property
    def diagnostics(self) -> str:
        return self.msg.value.text.format(**dict(self.values))

    def to_fhir(self) -> dict[str, t.Any]:
        entry = self.msg.value
        out: dict[str, t.Any] = {"severity": entry.severity, "code": entry.code}
        if entry.hpi:
            code, display = entry.hpi
            out["details"] = {"coding": [{"system": HPI_CODE_SYSTEM, "code": code, "display": display}]}
        out["diagnostics"] = self.diagnostics
        if self.expression:
            out["expression"] = [self.expression, *self.also]
        return out


def issue(msg: Msg, expression: str | None = None, **values: t.Any) -> Issue:
    """Name a catalogue entry for the element at ``expression``, filling its placeholders."""
    return Issue(msg, expression, tuple(values.items()))


def operation_outcome(issues: t.Iterable[Issue]) -> dict[str, t.Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}


class FhirError(Exception):
    """An error that is answered with an OperationOutcome; the status is its first issue's."""

    def __init__(self, issues: Issue | t.Sequence[Issue], headers: t.Mapping[str, str] | None = None) -> None:
        self.issues = [issues] if isinstance(issues, Issue) else list(issues)
        self.headers = dict(headers or {})  # e.g. WWW-Authenticate on a 401
        super().__init__("; ".join(i.diagnostics for i in self.issues))

    @property
    def status(self) -> int:
        return self.issues[0].status

    def outcome(self) -> dict[str, t.Any]:
        return operation_outcome(self.issues)


class RequestRejected(FhirError):
    """The request or its resource breaks a rule; nothing was stored."""


class StoreUnavailable(FhirError):
    """The database did not answer in time, or did not confirm a write. Raised by the store only.

    ``may_be_applied``: a write was sent whose outcome is unknown (a network error after sending, a
    write concern error, a time limit); the answer says so, and never "not applied".
    """

    def __init__(self, may_be_applied: bool = False) -> None:
        super().__init__(issue(Msg.DB_OUTCOME_UNKNOWN if may_be_applied else Msg.DB_UNAVAILABLE))
        self.may_be_applied = may_be_applied
