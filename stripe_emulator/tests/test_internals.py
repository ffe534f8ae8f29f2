"""Units: form decoding (property-tested against stripe-python's encoder), skeleton drift."""

from __future__ import annotations

import io
import sys
from contextlib import redirect_stdout
from pathlib import Path
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stripe._encode import _api_encode

from stripe_emulator.errors import StripeError
from stripe_emulator.params import check, decode, merge_metadata

keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
values = st.text(max_size=12)
leaf_dicts = st.dictionaries(keys, values, max_size=3)
params = st.dictionaries(
    keys,
    st.one_of(values, leaf_dicts, st.lists(values, min_size=1, max_size=3),
              st.lists(st.dictionaries(keys, values, min_size=1, max_size=3),
                       min_size=1, max_size=3)),
    max_size=4,
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params)
def test_decode_inverts_stripe_pythons_encoder(data):
    encoded = urlencode(list(_api_encode(data)))
    expected = {k: v for k, v in data.items() if v != {}}  # empty objects are not sent
    assert decode(encoded) == expected


def test_decode_bracket_forms():
    assert decode("a[]=1&a[]=2&b[x][0][y]=z") == {"a": ["1", "2"], "b": {"x": [{"y": "z"}]}}
    assert decode("expand[0]=line_items&expand[1]=customer") == {
        "expand": ["line_items", "customer"]
    }
    assert decode("metadata[k]=") == {"metadata": {"k": ""}}


def test_check_coerces_and_rejects():
    spec = {"n": "int", "b": "bool", "items": [{"price": "str"}], "metadata": "meta"}
    got = check({"n": "3", "b": "true", "items": [{"price": "p"}]}, spec)
    assert got == {"n": 3, "b": True, "items": [{"price": "p"}]}
    with pytest.raises(StripeError) as info:
        check({"items": [{"price": "p", "qty": "1"}]}, spec)
    assert info.value.param == "items[0][qty]" and info.value.code == "parameter_unknown"
    with pytest.raises(StripeError):
        check({"b": "maybe"}, spec)
    with pytest.raises(StripeError):
        check({"metadata": {"k" * 41: "v"}}, spec)
    assert merge_metadata({"a": "1", "b": "2"}, {"a": "", "c": "3"}) == {"b": "2", "c": "3"}


def test_skeletons_are_current_for_the_installed_sdk():
    """Regenerate after upgrading stripe-python:
    python -m stripe_emulator.tools.gen_skeletons > stripe_emulator/_skeletons.py"""
    from stripe_emulator.tools import gen_skeletons

    out = io.StringIO()
    with redirect_stdout(out):
        gen_skeletons.main()
    path = Path(sys.modules["stripe_emulator._skeletons"].__file__)
    generated = compile(out.getvalue(), "generated", "exec")
    current = compile(path.read_text(), "current", "exec")
    ns_new: dict = {}
    ns_old: dict = {}
    exec(generated, ns_new)  # noqa: S102 - our own generated data module
    exec(current, ns_old)  # noqa: S102
    assert ns_new["SKELETONS"] == ns_old["SKELETONS"]
    assert ns_new["API_VERSION"] == ns_old["API_VERSION"]
