"""Generate ``stripe_emulator/_skeletons.py`` from the installed stripe-python annotations.

Run: ``python -m stripe_emulator.tools.gen_skeletons > stripe_emulator/_skeletons.py``

A skeleton is an object with every field the SDK declares, set to a neutral default (null for
optional fields, the first Literal value, 0, "", [] or a nested skeleton). Object builders start
from a skeleton and fill in what they know, so no field is ever missing. The emulator itself
stays stdlib-only: it reads the generated module, never stripe-python.
"""

from __future__ import annotations

import pprint
import types
import typing
from typing import Any

import stripe

from stripe_emulator.shape_check import ALWAYS_OPTIONAL, INCLUDABLE, class_for

# Top-level objects, then nested paths that builders fill in beyond the all-null default.
TARGETS = [
    "account",
    "account.settings",
    "account.settings.dashboard",
    "account.settings.branding",
    "customer",
    "customer.invoice_settings",
    "product",
    "price",
    "price.recurring",
    "plan",
    "checkout.session",
    "checkout.session.customer_details",
    "checkout.session.total_details",
    "checkout.session.total_details.breakdown",
    "item",
    "subscription",
    "subscription.cancellation_details",
    "subscription_item",
    "invoice",
    "invoice.parent",
    "invoice.parent.subscription_details",
    "line_item",
    "line_item.parent",
    "line_item.parent.subscription_item_details",
    "line_item.parent.invoice_item_details",
    "line_item.pricing",
    "line_item.pricing.price_details",
    "invoiceitem",
    "invoiceitem.parent",
    "invoiceitem.parent.subscription_details",
    "invoiceitem.pricing",
    "invoiceitem.pricing.price_details",
    "invoice_payment",
    "payment_intent",
    "payment_intent.last_payment_error",
    "payment_intent.next_action",
    "charge",
    "charge.outcome",
    "charge.payment_method_details",
    "charge.payment_method_details.card",
    "balance_transaction",
    "payment_method",
    "payment_method.card",
    "refund",
    "dispute",
    "coupon",
    "promotion_code",
    "promotion_code.promotion",
    "promotion_code.restrictions",
    "discount",
    "discount.source",
    "dispute.evidence",
    "dispute.evidence_details",
    "payment_method.us_bank_account",
    "charge.payment_method_details.us_bank_account",
    "billing_portal.session",
    "billing_portal.configuration",
    "subscription_schedule",
    "subscription_schedule.current_phase",
    "subscription_schedule.phases",
    "subscription_schedule.phases.items",
    "subscription.pending_update",
    "event",
    "webhook_endpoint",
    "test_helpers.test_clock",
    "tax_id",
    "tax_id.owner",
    "tax_id.verification",
]

LIST = {"object": "list", "data": [], "has_more": False, "url": ""}

# Where the SDK says Optional but Stripe answers with a value (and consumers depend on it):
# dj-stripe iterates subscription.default_tax_rates, so null crashed its sync.
STRIPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "subscription": {"default_tax_rates": []},
}


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(
        tp
    ):
        rest = [a for a in typing.get_args(tp) if a is not type(None)]
        return (rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]), True  # noqa: UP007
    return tp, False


def _annotations(cls: type) -> dict[str, Any]:
    return {
        k: v
        for k, v in cls.__annotations__.items()
        if not k.startswith("_") and not _is_class_var(v)
    }


def _is_class_var(annotation: Any) -> bool:
    origin: object = typing.get_origin(annotation)
    return origin is typing.ClassVar


def default(tp: Any) -> Any:
    tp, optional = _strip_optional(tp)
    if optional:
        return None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return args[0]
    if origin in (typing.Union, types.UnionType):
        literals = [a for a in args if typing.get_origin(a) is typing.Literal]
        if literals:
            return typing.get_args(literals[0])[0]
        return default(args[0])
    if origin in (list, typing.List):  # noqa: UP006
        return []
    if origin in (dict, typing.Dict):  # noqa: UP006
        return {}
    if tp is bool:
        return False
    if tp in (int, float):
        return 0
    if tp is str or isinstance(tp, (str, typing.ForwardRef)):
        return ""
    cls = origin or tp
    if isinstance(cls, type) and issubclass(cls, stripe.StripeObject):
        if cls.__name__ in ("ListObject", "SearchResultObject"):
            return dict(LIST)
        if cls.__name__ == "UntypedStripeObject":
            return {}
        return skeleton_of(cls, None)
    return None


def skeleton_of(cls: type, object_name: str | None) -> dict[str, Any]:
    skip = ALWAYS_OPTIONAL | INCLUDABLE.get(object_name or "", frozenset())
    return {k: default(tp) for k, tp in _annotations(cls).items() if k not in skip}


def class_at(path: str) -> tuple[type, str | None]:
    """The class for a target: the longest prefix naming an API object, then fields."""
    parts = path.split(".")
    for n in range(len(parts), 0, -1):
        top = ".".join(parts[:n])
        cls = class_for(top)
        if cls is None:
            continue
        if n == len(parts):
            return cls, top
        for part in parts[n:]:
            tp, _ = _strip_optional(_annotations(cls)[part])
            if typing.get_origin(tp) in (list, typing.List):  # noqa: UP006 - a list's element
                tp = typing.get_args(tp)[0]
            cls = typing.get_origin(tp) or tp
        return cls, None
    raise KeyError(path)


def main() -> None:
    out = {path: skeleton_of(*class_at(path)) for path in TARGETS}
    for path, values in STRIPE_DEFAULTS.items():
        out[path].update(values)
    print(f'"""Generated by stripe_emulator.tools.gen_skeletons from stripe {stripe.VERSION}.')
    print("")
    print("Do not edit by hand; regenerate after upgrading stripe-python.")
    print('"""')
    print("")
    print("# fmt: off")
    print("from typing import Any")
    print("")
    print(f"SDK_VERSION = {stripe.VERSION!r}")
    print(f"API_VERSION = {stripe.api_version!r}")
    print("SKELETONS: dict[str, Any] = " + pprint.pformat(out, width=100, sort_dicts=True))


if __name__ == "__main__":
    main()
