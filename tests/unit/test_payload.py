"""The typed decode of a payload and the generic fallback give the projection the same records."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ledger import payload
from ledger.errors import Rejected
from ledger.payload import _ORDER, _big_int, parse_order
from tests.helpers import sample

SAMPLES = ["a-new-order", "b-updated-shipped-closed", "c-unicode-discount-percent", "d-canceled"]


def generic(text: str) -> payload.Order:
    return payload.from_mapping(json.loads(text, parse_float=Decimal, parse_int=_big_int))


def fields_of(*kinds: type[msgspec.Struct]) -> list[str]:
    return sorted({name for kind in kinds for name in kind.__struct_fields__} | {"other"})


scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
scalars |= st.decimals(allow_nan=False, allow_infinity=False, places=2)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=8,
)


def record(kind: type[msgspec.Struct]) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object with some of the record's fields (and others), of any values."""
    return st.dictionaries(st.sampled_from(fields_of(kind)), values, max_size=6)


orders = st.fixed_dictionaries(
    {},
    optional={
        "customer": record(payload.Address) | st.just([]) | st.none(),
        "shipping": record(payload.Address) | st.just([]),
        "order_items": st.lists(record(payload.Line), max_size=3),
        "order_shipments": st.lists(record(payload.Shipment), max_size=2) | st.none(),
        **{name: values for name in ("email", "folder_id", "order_total", "tax_total", "other")},
    },
)


def encode(value: Any) -> str:
    """JSON with the decimals written as numbers, exactly."""
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else "0"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(encode(v) for v in value) + "]"
    return json.dumps(value)


@pytest.mark.parametrize("name", SAMPLES)
def test_the_samples_decode_typed_and_equal_the_generic_records(name: str) -> None:
    text = sample(name).decode()
    assert repr(_ORDER.decode(text)) == repr(generic(text))


# The first st.text() a process draws works out its alphabet (~1 s): when this test is
# the first to draw one (tests/unit alone, on a fresh interpreter) that is not slowness.
@hsettings(suppress_health_check=[HealthCheck.too_slow])
@given(orders)
def test_what_the_types_admit_decodes_to_the_records_the_generic_decode_gives(
    order: dict[str, Any],
) -> None:
    text = encode(order)
    assert repr(_ORDER.decode(text)) == repr(generic(text))


@pytest.mark.parametrize(
    "text",
    [
        '{"customer": "a string", "order_items": [{"code": "A"}]}',
        '{"order_items": [{"code": "A"}, "not a line", 3]}',
        '{"order_items": {}, "order_shipments": ""}',
        '{"order_total": 1' + "0" * 5000 + ', "customer": {"first_name": "A"}}',
    ],
)
def test_what_the_types_do_not_admit_is_decoded_generically(text: str) -> None:
    with pytest.raises(msgspec.ValidationError):
        _ORDER.decode(text)
    assert repr(parse_order(text)) == repr(generic(text))


def test_a_repeated_key_means_its_last_value_either_way() -> None:
    text = (
        '{"customer": [], "shipping": {"city": "Oslo", "city": "Bergen"}, "email": 1, "email": "b"}'
    )
    typed = _ORDER.decode(text)
    assert (typed.shipping.city, typed.email) == ("Bergen", "b")  # type: ignore[union-attr]
    assert repr(typed) == repr(generic(text))


HUGE = "1" * 5000  # more digits than Python builds an int from: the standard library's parser


@pytest.mark.parametrize(
    "text",
    [
        '{"email": "a", "y": }',
        '{"email": "a", "y": NaN}',
        '{"customer": "not an address", "y": [1,}',
        f'{{"email": {HUGE}, "y": }}',
        f'{{"email": {HUGE}, "y": NaN}}',
        f'{{"email": {HUGE}, "y": -Infinity}}',
        f'{{"email": {HUGE}, "y": "\\ud83d"}}',
        f"[{HUGE}]",
    ],
)
def test_what_is_not_json_is_refused_with_400_whichever_decoder_reads_it(text: str) -> None:
    with pytest.raises(Rejected) as refused:
        parse_order(text)
    assert refused.value.status == 400
