"""Admin forms for channel connections.

Credentials are write-only: the form never renders a stored secret (the change page shows
``Channel.credentials_masked()`` instead) and never echoes back what was typed, even when the
form is shown again with an error. What is entered is merged into the stored credentials and
encrypted by ``Channel.set_credentials``.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.db import models

from channels_app.models import Channel
from inventory.exceptions import DomainError

# The keys each connector reads (see channels_app/INTERFACES.md); shown as a hint only, since
# a connector names a missing key itself when the connection is tested.
CREDENTIAL_KEYS: dict[str, tuple[str, ...]] = {
    Channel.Kind.AMAZON: ("refresh_token", "lwa_app_id", "lwa_client_secret"),
    Channel.Kind.SHOPIFY: ("access_token", "webhook_secret"),
    Channel.Kind.EBAY: ("client_id", "client_secret", "refresh_token"),
    Channel.Kind.WALMART: ("client_id", "client_secret"),
}
MASK = "•"


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never renders a value: a secret typed in must not come back in HTML."""

    def format_value(self, value: Any) -> None:
        return None


def url_https_by_default(db_field: models.Field, **kwargs: Any) -> forms.Field | None:
    """Form fields as Django makes them, except that a URL typed without a scheme is https
    (channel APIs are; a local simulator's URL is typed with its http://)."""
    if isinstance(db_field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return db_field.formfield(**kwargs)


def credential_keys_hint() -> str:
    return "; ".join(
        f"{Channel.Kind(kind).label}: {', '.join(keys)}" for kind, keys in CREDENTIAL_KEYS.items()
    )


class ChannelAdminForm(forms.ModelForm):
    """The channel change form plus a write-only credentials field."""

    new_credentials = forms.CharField(
        label="Enter credentials",
        required=False,
        widget=WriteOnlyTextarea(
            attrs={"rows": 4, "cols": 60, "autocomplete": "off", "spellcheck": "false"}
        ),
        help_text=(
            'A JSON object, e.g. {"access_token": "shpat_..."}. Blank keeps the stored '
            "credentials. Keys entered replace the stored ones of the same name, other stored "
            "keys are kept, and a key set to null is removed. Keys per kind: "
            + credential_keys_hint()
            + "."
        ),
    )

    class Meta:
        model = Channel
        formfield_callback = url_https_by_default
        fields = (
            "code",
            "kind",
            "name",
            "marketplace",
            "is_enabled",
            "base_url",
            "settings_json",
            "poll_interval_seconds",
            "rate_per_second",
            "burst",
            "default_fulfillment_model",
            "handling_days",
            "allow_split_shipments",
            "fba_warehouse",
            "safety_buffer",
            "percent_shown",
            "min_shown",
            "max_shown",
            "zero_at_or_below",
            "last_units_threshold",
            "safe_for_last_units",
            "velocity_buffer",
            "push_delay_seconds",
        )

    def clean_new_credentials(self) -> dict[str, str | None] | None:
        text = self.cleaned_data["new_credentials"].strip()
        if not text:
            return None
        try:
            values = json.loads(text)
        except ValueError as err:
            # The parser's message quotes no input, only the position.
            raise forms.ValidationError(f"Not valid JSON: {err}.") from None
        if not isinstance(values, dict) or not values:
            raise forms.ValidationError('Enter a JSON object such as {"access_token": "..."}.')
        for key, value in values.items():
            if not key.strip():
                raise forms.ValidationError("A credential name is empty.")
            if value is None:
                continue
            if not isinstance(value, str) or not value:
                raise forms.ValidationError(
                    f"The value of {key!r} must be a non-empty string (or null to remove it)."
                )
            if value.startswith(MASK):
                raise forms.ValidationError(
                    f"The value of {key!r} is the masked value shown on this page, not the "
                    "secret itself. Enter the real value, or leave the key out to keep it."
                )
        return values

    def merged_credentials(self) -> dict[str, str] | None:
        """The credentials to store after this form, or ``None`` to keep the stored ones."""
        entered = self.cleaned_data.get("new_credentials")
        if entered is None:
            return None
        try:
            stored = self.instance.get_credentials()
        except DomainError:
            # Stored under a key that is gone: what is entered now replaces them.
            stored = {}
        merged = {**stored, **entered}
        return {key: value for key, value in merged.items() if value is not None}

    def save(self, commit: bool = True) -> Channel:
        channel = super().save(commit=False)
        credentials = self.merged_credentials()
        if credentials is not None:
            channel.set_credentials(credentials)
        if commit:
            channel.save()
            self._save_m2m()
        return channel
