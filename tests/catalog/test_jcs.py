"""The bytes custody v2 hashes: RFC 8785 with no floats and safe integers only, read strictly."""

import pytest

from catalog import jcs
from catalog.errors import InvalidInput


def test_jcs_sorts_keys_writes_text_as_itself_and_integers_plainly() -> None:
    value = {"b": [1, {}, []], "a": "现场视频 \u2028", "c": {"z": None, "y": True}, "n": -(2**53 - 1)}
    data = jcs.dumps(value)
    assert data == (
        '{"a":"现场视频 \u2028","b":[1,{},[]],"c":{"y":true,"z":null},"n":-9007199254740991}'.encode()
    )
    assert jcs.loads_exact(data) == value


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"start_s": 0.0}, "value.start_s"),
        ({"l": [1, 2.5]}, "value.l[1]"),
        ({"n": 2**53}, "value.n"),
        ({"n": -(2**53)}, "value.n"),
        ({"s": {1, 2}}, "value.s"),
    ],
)
def test_floats_large_integers_and_other_types_are_refused_by_name(value, where) -> None:
    with pytest.raises(InvalidInput, match=f"^{where.replace('[', '.').replace(']', '.')}"):
        jcs.dumps(value)


@pytest.mark.parametrize(
    "data",
    [
        b'{"a":1,"a":2}',  # duplicate key
        b'{"b":1,"a":2}',  # keys out of order
        b'{"a": 1}',  # whitespace
        b'{"a":1.0}',  # a float spelling
        b'{"a":1e3}',
        b'{"a":"\\u73b0"}',  # escaped where JCS writes the character itself
        b'{"a":NaN}',
        b'{"a":9007199254740992}',  # beyond the safe integers
        b'{"a":1}\n',  # trailing bytes
        b"\xff",
    ],
)
def test_anything_but_the_exact_canonical_bytes_is_refused(data) -> None:
    with pytest.raises(jcs.NotCanonical):
        jcs.loads_exact(data)
