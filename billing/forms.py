"""Small input forms: they parse and validate, the services decide."""

from __future__ import annotations

from typing import Any

from django import forms

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
