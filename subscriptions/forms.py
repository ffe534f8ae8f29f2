"""Small input forms: they parse and validate, the services decide.

The support staff's admin actions go through an intermediate form, and every change needs a
reason. Its ``token`` is minted when the form is first shown (``action_token``); the ledger's
idempotency key derives from it, so a double-submitted form (or a reload of the POST) changes
the balance once.
"""

from __future__ import annotations

import uuid
from typing import Any

from django import forms


class SignupForm(forms.Form):
    name = forms.CharField(max_length=150, required=False, label="Name (optional)")
    email = forms.EmailField(max_length=254, label="E-mail")
    password = forms.CharField(
        max_length=128,
        strip=False,
        label="Password",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 8 characters, not a common password.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"].widget.attrs["autocomplete"] = "email"
        self.fields["name"].widget.attrs["autocomplete"] = "name"


def action_token() -> str:
    """A fresh token for an admin action's intermediate form."""
    return uuid.uuid4().hex


REASON_HELP = "Saved in the ledger with your name; the customer may see it."


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=REASON_HELP,
    )
    token = forms.CharField(max_length=64, widget=forms.HiddenInput)

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A reason is required.")
        return reason


class AdjustCreditsForm(ReasonForm):
    amount = forms.IntegerField(
        min_value=-1_000_000,
        max_value=1_000_000,
        help_text="Positive grants never-expiring credits; negative removes credits "
        "(purchased first, then this month's allowance).",
    )
    field_order = ["amount", "reason", "token"]

    def clean_amount(self) -> int:
        amount = self.cleaned_data["amount"]
        if amount == 0:
            raise forms.ValidationError("Enter a non-zero amount.")
        return amount


class AllowanceForm(ReasonForm):
    allowance = forms.IntegerField(
        min_value=0,
        max_value=10_000_000,
        required=False,
        help_text="Monthly credits for an Institutional account. Leave empty to go back to "
        "the tier's default. It applies while the account is Institutional.",
    )
    field_order = ["allowance", "reason", "token"]
