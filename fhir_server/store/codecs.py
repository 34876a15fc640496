"""How values the server holds map onto BSON, beyond what pymongo maps itself.

A :class:`decimal.Decimal` (a JSON number with a fraction or an exponent, see ``exact_json.py``) is
stored as BSON Decimal128 and read back as a Decimal with the same sign, digits and exponent, so that
``1.50`` stays ``1.50`` (FHIR R4 datatypes.html#decimal). Validation has already refused any number
Decimal128 cannot hold exactly; were one to slip through, Decimal128 raises rather than round.
"""

from __future__ import annotations

import decimal

from bson.codec_options import TypeCodec, TypeRegistry
from bson.decimal128 import Decimal128


class DecimalCodec(TypeCodec):
    python_type = decimal.Decimal
    bson_type = Decimal128

    def transform_python(self, value: decimal.Decimal) -> Decimal128:
        return Decimal128(value)

    def transform_bson(self, value: Decimal128) -> decimal.Decimal:
        return value.to_decimal()


#: The ``type_registry`` of every client the server opens.
TYPE_REGISTRY = TypeRegistry([DecimalCodec()])
