"""Admin forms for inventory: SKU/bundle editing and the stock operations.

The stock operation forms only collect typed input and hand it to ``inventory.services``;
every domain rule (positive quantities, counts not below reserved, enough stock to
transfer) lives in the service, so a refusal comes back as a ``DomainError`` with the same
code the API returns.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from django import forms
from django.contrib.auth.models import AbstractBaseUser

from . import services
from .models import SKU, WEEKDAYS, BundleComponent, CarrierPickup, StockLevel, Warehouse


class SKUAdminForm(forms.ModelForm):
    """A SKU; refuses to turn a SKU into a bundle while other bundles use it as a component."""

    class Meta:
        model = SKU
        fields = ["code", "title", "barcode", "kind", "category", "weight_grams", "is_active"]

    def clean_kind(self) -> str:
        kind = self.cleaned_data["kind"]
        # A bundle holds no stock of its own, so a component turned bundle would silently
        # drop out of every kit that reserves it.
        if (
            kind == SKU.Kind.BUNDLE
            and self.instance.pk
            and self.instance.kind != SKU.Kind.BUNDLE
            and self.instance.component_of.exists()
        ):
            raise forms.ValidationError(
                "This SKU is a component of other bundles; it cannot become a bundle itself."
            )
        return kind


class BundleComponentFormSet(forms.BaseInlineFormSet):
    """Components of a bundle: standard SKUs only, never the bundle itself."""

    def clean(self) -> None:
        super().clean()
        # The admin validates the parent form first and hands its instance (already
        # carrying the submitted kind) to this formset, so kind and components can be edited
        # on the same page.
        bundle: SKU = self.instance
        kind = bundle.kind
        rows = [
            f.cleaned_data
            for f in self.forms
            if f.cleaned_data and not f.cleaned_data.get("DELETE", False)
        ]
        components = [row["component"] for row in rows if row.get("component")]
        if components and kind != SKU.Kind.BUNDLE:
            raise forms.ValidationError(
                "Only a bundle has components: set the kind to bundle or remove them."
            )
        for component in components:
            if bundle.pk and component.pk == bundle.pk:
                raise forms.ValidationError(f"{component.code} cannot be a component of itself.")
            if component.kind != SKU.Kind.STANDARD:
                raise forms.ValidationError(
                    f"{component.code} is a bundle: components must be standard SKUs."
                )


class BundleComponentForm(forms.ModelForm):
    class Meta:
        model = BundleComponent
        fields = ["component", "quantity"]


class CarrierPickupForm(forms.ModelForm):
    """One carrier pickup; its weekdays as checkboxes, stored as weekday digits."""

    weekdays = forms.MultipleChoiceField(
        choices=WEEKDAYS,
        widget=forms.CheckboxSelectMultiple,
        initial=["0", "1", "2", "3", "4"],
        help_text="The days the carrier comes (public holidays are skipped).",
    )

    class Meta:
        model = CarrierPickup
        fields = ["carrier", "services", "cutoff", "weekdays", "is_default"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["weekdays"] = list(self.instance.weekdays)

    def clean_weekdays(self) -> str:
        return "".join(sorted(self.cleaned_data["weekdays"]))


class CarrierPickupFormSet(forms.BaseInlineFormSet):
    """A warehouse's pickups: when it has any, exactly one is the default (where orders go
    that no other pickup takes, and whose time and days set the orders' deadlines)."""

    def clean(self) -> None:
        super().clean()
        rows = [
            f.cleaned_data
            for f in self.forms
            if f.cleaned_data and not f.cleaned_data.get("DELETE", False)
        ]
        defaults = sum(1 for row in rows if row.get("is_default"))
        if rows and defaults != 1:
            raise forms.ValidationError(
                "Mark exactly one pickup as the default: it takes the orders no other pickup "
                f"takes ({defaults} marked)."
            )

    def save(self, commit: bool = True) -> list[CarrierPickup]:
        if commit:
            # One default per warehouse is a database constraint, checked row by row as the
            # rows are saved in page order: the pickup giving the default up lets go first,
            # whichever row takes it over.
            letting_go = [
                form.instance.pk
                for form in self.initial_forms
                if form.initial.get("is_default")
                and (form in self.deleted_forms or not form.cleaned_data.get("is_default"))
            ]
            CarrierPickup.objects.filter(pk__in=letting_go).update(is_default=False)
        return super().save(commit=commit)


# -- stock operations -------------------------------------------------------------------------


class StockOperationForm(forms.Form):
    """Base for a form that applies one stock service to one stock level.

    ``idempotency_key`` is generated when the form is first shown, so submitting the same
    page twice (double click, browser resubmit) applies the operation once.
    """

    title: ClassVar[str] = ""
    verb: ClassVar[str] = ""
    permission: ClassVar[str] = ""

    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=100)

    def __init__(self, *args, stock_level: StockLevel | None = None, **kwargs):
        kwargs.setdefault("initial", {})
        kwargs["initial"].setdefault("idempotency_key", uuid.uuid4().hex)
        super().__init__(*args, **kwargs)
        self.stock_level = stock_level

    def execute(self, *, actor: AbstractBaseUser) -> list[StockLevel]:
        """Call the service with the cleaned data; returns the stock levels it changed."""
        raise NotImplementedError


class _ReferenceMixin(forms.Form):
    reference = forms.CharField(
        max_length=100, required=False, help_text="Delivery note, PO or count sheet number."
    )


class StockReceiveForm(StockOperationForm, _ReferenceMixin):
    title = "Receive stock"
    verb = "receive"
    permission = "inventory.receive_stock"

    field_order = ["quantity", "reference", "reason"]

    quantity = forms.IntegerField(help_text="Units received.")
    reason = forms.CharField(max_length=200, required=False)

    def execute(self, *, actor: AbstractBaseUser) -> list[StockLevel]:
        data = self.cleaned_data
        level = services.stock_receive(
            sku=self._sku(),
            warehouse=self._warehouse(),
            quantity=data["quantity"],
            reference=data["reference"],
            reason=data["reason"],
            actor=actor,
            idempotency_key=data["idempotency_key"],
        )
        return [level]

    def _sku(self) -> SKU | str:
        return self.stock_level.sku

    def _warehouse(self) -> Warehouse:
        return self.stock_level.warehouse


class StockReceiveNewForm(StockReceiveForm):
    """Receive a SKU into a warehouse where it has no stock level yet."""

    field_order = ["sku", "warehouse", "quantity", "reference", "reason"]

    sku = forms.CharField(max_length=64, label="SKU code")
    warehouse = forms.ModelChoiceField(queryset=Warehouse.objects.filter(is_active=True))

    def _sku(self) -> SKU | str:
        # A code, not a lookup here: the service resolves it and reports an unknown SKU.
        return self.cleaned_data["sku"].strip()

    def _warehouse(self) -> Warehouse:
        return self.cleaned_data["warehouse"]


class StockAdjustForm(StockOperationForm, _ReferenceMixin):
    title = "Adjust stock"
    verb = "adjust"
    permission = "inventory.adjust_stock"

    field_order = ["delta", "reason", "reference"]

    delta = forms.IntegerField(help_text="Units to add (positive) or remove (negative).")
    reason = forms.CharField(max_length=200, help_text="Found, damaged, lost, ...")

    def execute(self, *, actor: AbstractBaseUser) -> list[StockLevel]:
        data = self.cleaned_data
        level = services.stock_adjust(
            sku=self.stock_level.sku,
            warehouse=self.stock_level.warehouse,
            delta=data["delta"],
            reason=data["reason"],
            reference=data["reference"],
            actor=actor,
            idempotency_key=data["idempotency_key"],
        )
        return [level]


class StockCountForm(StockOperationForm, _ReferenceMixin):
    title = "Record a stock count"
    verb = "count"
    permission = "inventory.count_stock"

    field_order = ["counted_quantity", "reference"]

    counted_quantity = forms.IntegerField(help_text="Units physically counted on the shelf.")

    def execute(self, *, actor: AbstractBaseUser) -> list[StockLevel]:
        data = self.cleaned_data
        level = services.stock_count(
            sku=self.stock_level.sku,
            warehouse=self.stock_level.warehouse,
            counted_quantity=data["counted_quantity"],
            reference=data["reference"],
            actor=actor,
            idempotency_key=data["idempotency_key"],
        )
        return [level]


class StockTransferForm(StockOperationForm, _ReferenceMixin):
    title = "Transfer stock"
    verb = "transfer"
    permission = "inventory.transfer_stock"

    field_order = ["to_warehouse", "quantity", "reason", "reference"]

    to_warehouse = forms.ModelChoiceField(queryset=Warehouse.objects.none())
    quantity = forms.IntegerField(help_text="Unreserved units to move.")
    reason = forms.CharField(max_length=200, required=False)

    def __init__(self, *args, stock_level: StockLevel | None = None, **kwargs):
        super().__init__(*args, stock_level=stock_level, **kwargs)
        targets = Warehouse.objects.filter(is_active=True)
        if stock_level is not None:
            targets = targets.exclude(pk=stock_level.warehouse_id)
        self.fields["to_warehouse"].queryset = targets

    def execute(self, *, actor: AbstractBaseUser) -> list[StockLevel]:
        data = self.cleaned_data
        source, target = services.stock_transfer(
            sku=self.stock_level.sku,
            from_warehouse=self.stock_level.warehouse,
            to_warehouse=data["to_warehouse"],
            quantity=data["quantity"],
            reference=data["reference"],
            reason=data["reason"],
            actor=actor,
            idempotency_key=data["idempotency_key"],
        )
        return [source, target]


STOCK_OPERATION_FORMS: dict[str, type[StockOperationForm]] = {
    form.verb: form
    for form in (StockReceiveForm, StockAdjustForm, StockCountForm, StockTransferForm)
}
