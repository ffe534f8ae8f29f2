"""Small input forms: they parse and validate, the services decide."""

from __future__ import annotations

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

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"].widget.attrs["autocomplete"] = "email"
        self.fields["name"].widget.attrs["autocomplete"] = "name"
