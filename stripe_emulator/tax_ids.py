"""A customer's tax IDs (``/v1/customers/{cus}/tax_ids``): create, retrieve, list, delete.

Values are checked against the formats Stripe documents for each type (a bad one is Stripe's
400 ``tax_id_invalid``); only the types below are known to the emulator. Types Stripe verifies
against a government register (EU and UK VAT, ABN) get a ``verification``: in test mode the
number ``000000000`` verifies, ``111111111`` does not, anything else stays ``pending``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from . import objects
from .core import Request, Routes
from .errors import StripeError, invalid, missing, not_found
from .listing import LIST_SPEC, paginate

if TYPE_CHECKING:
    from .core import Emulator

routes = Routes()
CUS = r"(?P<cid>[^/]+)"
EU_PREFIXES = "AT|BE|BG|CY|CZ|DE|DK|EE|EL|ES|FI|FR|HR|HU|IE|IT|LT|LU|LV|MT|NL|PL|PT|RO|SE|SI|SK|XI"
# type -> (country, or None when the value's prefix names it; the value's format)
FORMATS: dict[str, tuple[str | None, str]] = {
    "eu_vat": (None, rf"({EU_PREFIXES})[0-9A-Z]{{8,12}}"),
    "gb_vat": ("GB", r"GB(\d{9}|\d{12})"),
    "us_ein": ("US", r"\d{2}-\d{7}"),
    "ca_bn": ("CA", r"\d{9}"),
    "au_abn": ("AU", r"\d{11}"),
    "nz_gst": ("NZ", r"\d{8,9}"),
    "ch_vat": ("CH", r"CHE-\d{3}\.\d{3}\.\d{3} (MWST|TVA|IVA)"),
    "no_vat": ("NO", r"\d{9}MVA"),
    "in_gst": ("IN", r"\d{2}[A-Z]{5}\d{4}[A-Z][1-9A-Z]Z[0-9A-Z]"),
    "jp_cn": ("JP", r"\d{13}"),
    "ae_trn": ("AE", r"\d{15}"),
    "za_vat": ("ZA", r"4\d{9}"),
    "br_cnpj": ("BR", r"\d{2}\.\d{3}\.\d{3}/\d{4}-\d{2}"),
    "br_cpf": ("BR", r"\d{3}\.\d{3}\.\d{3}-\d{2}"),
    "mx_rfc": ("MX", r"[A-Z&Ñ]{3,4}\d{6}[A-Z0-9]{3}"),
    "sg_uen": ("SG", r"\d{9}[A-Z]"),
}
VERIFIED_TYPES = ("eu_vat", "gb_vat", "au_abn")
TEST_VERIFICATION = {"000000000": "verified", "111111111": "unverified"}
COUNTRY_OF_PREFIX = {"EL": "GR", "XI": "GB"}


def new_tax_id(emu: Emulator, cus: dict[str, Any], kind: str, value: str) -> dict[str, Any]:
    """Validate ``value`` as a ``kind`` tax ID and store it on ``cus``."""
    if kind not in FORMATS:
        raise invalid("type", f"Invalid type: must be one of {', '.join(sorted(FORMATS))}.")
    country, pattern = FORMATS[kind]
    value = value.strip().upper() if kind != "ch_vat" else value.strip()
    if not re.fullmatch(pattern, value):
        raise StripeError(400, f"Invalid value for {kind}.", code="tax_id_invalid", param="value")
    if country is None:
        prefix = value[:2]
        country = COUNTRY_OF_PREFIX.get(prefix, prefix)
    tax_id = objects.new(
        "tax_id",
        id=emu.new_id("txi_"),
        created=emu.now_for(cus),
        country=country,
        customer=cus["id"],
        type=kind,
        value=value,
        owner=objects.new("tax_id.owner", type="customer", customer=cus["id"]),
    )
    if kind in VERIFIED_TYPES:
        digits = re.sub(r"\D", "", value)[-9:]
        status = TEST_VERIFICATION.get(digits, "pending")
        tax_id["verification"] = objects.new("tax_id.verification", status=status)
    emu.store.add(tax_id)
    emu.emit("customer.tax_id.created", tax_id)
    return tax_id


def tax_ids_of(emu: Emulator, customer_id: str) -> list[dict[str, Any]]:
    return [t for t in emu.store.all("tax_id") if t["customer"] == customer_id]


def invoice_tax_ids(emu: Emulator, customer_id: str) -> list[dict[str, Any]]:
    """``invoice.customer_tax_ids``: the customer's, until the invoice is finalized."""
    return [{"type": t["type"], "value": t["value"]} for t in tax_ids_of(emu, customer_id)]


def _one(emu: Emulator, customer_id: str, tax_id: str) -> dict[str, Any]:
    found = emu.store.get(tax_id, "tax_id")
    if found is None or found["customer"] != customer_id:
        raise not_found("tax_id", tax_id)
    return found


@routes("POST", f"/v1/customers/{CUS}/tax_ids")
def create_tax_id(emu: Emulator, req: Request, cid: str) -> dict[str, Any]:
    p = req.parse({"type": "str", "value": "str"})
    for name in ("type", "value"):
        if not p.get(name):
            raise missing(name)
    return new_tax_id(emu, emu.get("customer", cid), p["type"], p["value"])


@routes("GET", f"/v1/customers/{CUS}/tax_ids")
def list_tax_ids(emu: Emulator, req: Request, cid: str) -> dict[str, Any]:
    p = req.parse(LIST_SPEC)
    emu.get("customer", cid)
    return paginate(tax_ids_of(emu, cid), p, f"/v1/customers/{cid}/tax_ids")


@routes("GET", f"/v1/customers/{CUS}/tax_ids/(?P<tid>[^/]+)")
def get_tax_id(emu: Emulator, req: Request, cid: str, tid: str) -> dict[str, Any]:
    req.parse({})
    emu.get("customer", cid)
    return _one(emu, cid, tid)


@routes("GET", "/v1/tax_ids/(?P<tid>[^/]+)")
def get_tax_id_top_level(emu: Emulator, req: Request, tid: str) -> dict[str, Any]:
    """Stripe's Tax ID API retrieve, the path stripe-python's ``TaxId.retrieve`` (and so
    dj-stripe's re-fetch on ``customer.tax_id.*`` events) uses."""
    req.parse({})
    found = emu.store.get(tid, "tax_id")
    if found is None:
        raise not_found("tax_id", tid)
    return found


@routes("DELETE", f"/v1/customers/{CUS}/tax_ids/(?P<tid>[^/]+)")
def delete_tax_id(emu: Emulator, req: Request, cid: str, tid: str) -> dict[str, Any]:
    req.parse({})
    emu.get("customer", cid)
    tax_id = _one(emu, cid, tid)
    emu.store.remove(tid)
    emu.emit("customer.tax_id.deleted", tax_id)
    return {"id": tid, "object": "tax_id", "deleted": True}
