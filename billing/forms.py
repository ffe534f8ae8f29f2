"""Small input forms: they parse and validate, the services decide."""

from __future__ import annotations

from typing import Any

from django import forms

from billing.customer_details import TAX_ID_TYPES
from subscriptions import catalogue

INTERVAL_CHOICES = [("month", "Monthly"), ("year", "Yearly")]


class PlanForm(forms.Form):
    """A paid tier and an interval (both checked against the catalogue here and again by the
    service: the form only gives a friendly answer sooner)."""

    tier = forms.ChoiceField(
        choices=[(t.key, t.name) for t in catalogue.TIERS.values() if t.is_paid]
    )
    interval = forms.ChoiceField(choices=INTERVAL_CHOICES, initial="month")
    # The proration time of the preview the customer confirmed (Unix seconds), so Stripe
    # charges what the preview showed; the service refuses one that is out of date.
    proration_date = forms.IntegerField(required=False, min_value=0, max_value=2**40)


class CheckoutForm(forms.Form):
    tier = forms.CharField(max_length=32, required=False)
    interval = forms.ChoiceField(choices=INTERVAL_CHOICES, required=False)
    bundle = forms.CharField(max_length=64, required=False)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if bool(data.get("tier")) == bool(data.get("bundle")):
            raise forms.ValidationError("Choose a plan or a credit bundle.")
        data["interval"] = data.get("interval") or "month"
        return data


class CancelForm(forms.Form):
    immediate = forms.BooleanField(required=False)


class AutoTopUpForm(forms.Form):
    below = forms.IntegerField(
        min_value=0,
        max_value=1_000_000,
        label="Buy credits automatically when fewer than this are left (0: off)",
    )


class LowCreditForm(forms.Form):
    threshold = forms.IntegerField(
        min_value=0,
        max_value=1_000_000,
        label="E-mail me when fewer credits than this are left (0: never)",
    )


class BillingDetailsForm(forms.Form):
    """The billing e-mail and a tax id to add; Stripe checks the tax id's format again."""

    email = forms.EmailField(
        label="Billing e-mail", max_length=254, help_text="Receipts and invoices go here."
    )
    tax_id_type = forms.ChoiceField(
        label="Tax id type",
        required=False,
        choices=[("", "No tax id")]
        + [(t.key, f"{t.label} (e.g. {t.example})") for t in TAX_ID_TYPES.values()],
    )
    tax_id_value = forms.CharField(label="Tax id", max_length=64, required=False, strip=True)

    # Stripe's ``param`` in a validation error -> the field it is about.
    STRIPE_PARAMS = {"email": "email", "type": "tax_id_type", "value": "tax_id_value"}

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("tax_id_value") and not data.get("tax_id_type"):
            self.add_error("tax_id_type", "Choose the kind of tax id.")
        return data


class TaxIdRemoveForm(forms.Form):
    tax_id = forms.CharField(max_length=64)
