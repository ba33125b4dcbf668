"""Admin forms for the order actions: ship, cancel, hold, change the address, and map an
unknown SKU.

The forms collect typed input and hand it to ``oms.services``; every rule (which status may
ship, tracking-number formats, quantities still open) lives in the service, so a refusal comes
back as a ``DomainError`` that the admin shows as an error message, with the same code the API
returns. Each form's ``execute`` returns the order as it is afterwards.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import AutocompleteSelect

from inventory.models import SKU
from oms.carriers import carrier_choices
from oms.models import CancelReason, HoldReason, Order, OrderLine
from oms.services.events import Actor
from oms.services.orders import (
    order_address_change,
    order_cancel,
    order_hold,
    order_line_map_sku,
)
from oms.services.shipments import shipment_create


class OrderActionForm(forms.Form):
    """Base for a form that applies one order service to one order (or, for the bulk actions
    that need input, to each selected order)."""

    title: ClassVar[str] = ""
    verb: ClassVar[str] = ""
    permission: ClassVar[str] = ""
    done: ClassVar[str] = ""

    def __init__(self, *args, order: Order | None = None, line: OrderLine | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.order = order
        self.line = line

    def execute(self, *, order: Order, actor: Actor) -> Order:
        """Call the service with the cleaned data; raises the service's ``DomainError``."""
        raise NotImplementedError


class CancelForm(OrderActionForm):
    title = "Cancel order"
    verb = "cancel"
    permission = "oms.cancel_order"
    done = "Cancelled"

    reason = forms.ChoiceField(choices=CancelReason.choices)
    message = forms.CharField(
        max_length=500,
        required=False,
        help_text="Shown on the order's timeline; the reason's label when left empty.",
    )

    def execute(self, *, order: Order, actor: Actor) -> Order:
        return order_cancel(
            order=order,
            reason=self.cleaned_data["reason"],
            message=self.cleaned_data["message"],
            actor=actor,
        )


class HoldForm(OrderActionForm):
    title = "Put order on hold"
    verb = "hold"
    permission = "oms.hold_order"
    done = "Put on hold"

    reason = forms.ChoiceField(choices=HoldReason.choices, initial=HoldReason.MANUAL)
    detail = forms.CharField(
        max_length=500, required=False, help_text="What has to happen before it can go on."
    )

    def execute(self, *, order: Order, actor: Actor) -> Order:
        return order_hold(
            order=order,
            reason=self.cleaned_data["reason"],
            detail=self.cleaned_data["detail"],
            actor=actor,
        )


class ShipForm(OrderActionForm):
    """Record a parcel: carrier, tracking number and, for a partial shipment, how many units of
    each open line are in it (all open units by default).

    ``idempotency_key`` is generated when the form is first shown, so submitting the same page
    twice records one shipment.
    """

    title = "Ship order"
    verb = "ship"
    permission = "oms.ship_order"
    done = "Shipment recorded"

    carrier_code = forms.ChoiceField(label="carrier", choices=carrier_choices)
    carrier_name = forms.CharField(
        max_length=100, required=False, help_text="Required for 'Other carrier' only."
    )
    tracking_number = forms.CharField(max_length=60)
    service = forms.CharField(max_length=100, required=False, help_text="e.g. Ground, 2nd Day Air.")
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=100)

    def __init__(self, *args, order: Order, **kwargs):
        kwargs.setdefault("initial", {})
        kwargs["initial"].setdefault("idempotency_key", uuid.uuid4().hex)
        kwargs["initial"].setdefault("service", order.service_level)
        super().__init__(*args, order=order, **kwargs)
        self.open_lines = [line for line in order.lines.all() if line.quantity_open > 0]
        for line in self.open_lines:
            self.fields[self.line_field(line)] = forms.IntegerField(
                label=f"{line.seller_sku} (open {line.quantity_open})",
                min_value=0,
                max_value=line.quantity_open,
                initial=line.quantity_open,
                help_text=line.title,
            )

    @staticmethod
    def line_field(line: OrderLine) -> str:
        return f"line_{line.pk}"

    def clean(self) -> dict:
        cleaned = super().clean()
        quantities = [cleaned.get(self.line_field(line)) for line in self.open_lines]
        if all(quantity is not None for quantity in quantities) and not any(quantities):
            raise forms.ValidationError("Put at least one unit in the shipment.")
        return cleaned

    def execute(self, *, order: Order, actor: Actor) -> Order:
        data = self.cleaned_data
        # Every open line is passed, zeros included: an empty mapping would mean "ship all".
        lines = {line.pk: data[self.line_field(line)] for line in self.open_lines}
        shipment = shipment_create(
            order=order,
            carrier_code=data["carrier_code"],
            carrier_name=data["carrier_name"],
            tracking_number=data["tracking_number"],
            service=data["service"],
            lines=lines,
            idempotency_key=data["idempotency_key"],
            actor=actor,
        )
        return Order.objects.get(pk=shipment.order_id)


class MapSkuForm(OrderActionForm):
    """Tell the order which of our SKUs a channel SKU we did not know stands for."""

    title = "Map SKU"
    verb = "map_sku"
    permission = "oms.change_order"
    done = "SKU mapped"

    sku = forms.ModelChoiceField(
        label="our SKU", queryset=SKU.objects.filter(is_active=True), help_text="Type to search."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Search as you type: a seller may have tens of thousands of SKUs.
        field = self.fields["sku"]
        field.widget = AutocompleteSelect(OrderLine._meta.get_field("sku"), admin.site)
        field.widget.choices = field.choices

    def execute(self, *, order: Order, actor: Actor) -> Order:
        return order_line_map_sku(line=self.line, sku=self.cleaned_data["sku"], actor=actor)


class AddressForm(OrderActionForm):
    """Correct the ship-to address; an API warehouse is sent the new one by itself."""

    title = "Change address"
    verb = "change_address"
    permission = "oms.change_order"
    done = "Address changed"

    ship_name = forms.CharField(label="name", max_length=200, required=False)
    ship_line1 = forms.CharField(label="street", max_length=200)
    ship_line2 = forms.CharField(label="line 2", max_length=200, required=False)
    ship_line3 = forms.CharField(label="line 3", max_length=200, required=False)
    ship_city = forms.CharField(label="city", max_length=100)
    ship_region = forms.CharField(label="region", max_length=100, required=False)
    ship_postal_code = forms.CharField(label="postal code", max_length=20)
    ship_country = forms.CharField(
        label="country", min_length=2, max_length=2, help_text="ISO code, e.g. US."
    )
    ship_phone = forms.CharField(label="phone", max_length=40, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.order is not None and not self.is_bound:
            self.initial = {name: getattr(self.order, name) for name in self.fields}

    def execute(self, *, order: Order, actor: Actor) -> Order:
        return order_address_change(order=order, address=self.cleaned_data, actor=actor)
