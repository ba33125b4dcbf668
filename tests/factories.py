"""factory-boy factories shared by the whole test suite.

Catalogue rows (warehouses, SKUs, bundle lines, users) are plain fixtures data; stock itself
is never faked here: tests put stock in place through ``inventory.services`` so the
counters always match the ledger.

    wh = WarehouseFactory()
    sku = SKUFactory()
    kit = BundleFactory(components=[(sku, 2)])
    clerk = StaffUserFactory(groups=["Warehouse"])
    bot = UserFactory(perms=["inventory.receive_stock", "inventory.view_stocklevel"])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from factory.django import DjangoModelFactory

from inventory.models import SKU, BundleComponent, Warehouse
from oms.roles import ROLE_PERMISSIONS

DEFAULT_PASSWORD = "correct-horse-battery-staple"


class WarehouseFactory(DjangoModelFactory):
    class Meta:
        model = Warehouse
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"wh-{n:03d}")
    name = factory.LazyAttribute(lambda o: f"Warehouse {o.code}")
    kind = Warehouse.Kind.OWN
    country = "US"
    time_zone = "America/New_York"
    is_active = True


class SKUFactory(DjangoModelFactory):
    class Meta:
        model = SKU
        django_get_or_create = ("code",)
        skip_postgeneration_save = True

    code = factory.Sequence(lambda n: f"SKU-{n:05d}")
    title = factory.LazyAttribute(lambda o: f"Item {o.code}")
    kind = SKU.Kind.STANDARD
    category = "general"
    weight_grams = 250
    is_active = True


class BundleFactory(SKUFactory):
    """A bundle SKU; ``components=[(sku, units_per_bundle), ...]`` adds its lines."""

    code = factory.Sequence(lambda n: f"KIT-{n:05d}")
    kind = SKU.Kind.BUNDLE

    @factory.post_generation
    def components(self, create: bool, extracted: Sequence[tuple[SKU, int]] | None, **kwargs):
        if not create or not extracted:
            return
        BundleComponent.objects.bulk_create(
            [
                BundleComponent(bundle=self, component=component, quantity=quantity)
                for component, quantity in extracted
            ]
        )


def role_group(name: str) -> Group:
    """The staff role group ``name`` with its permissions.

    Migrations create the role groups, but transactional tests (``transaction=True``, e.g.
    browser tests) flush every table afterwards and only permissions come back; this
    re-creates a role from ``oms.roles.ROLE_PERMISSIONS`` when it is missing.
    """
    group, created = Group.objects.get_or_create(name=name)
    if created and name in ROLE_PERMISSIONS:
        for app_label, codenames in ROLE_PERMISSIONS[name].items():
            in_app = Permission.objects.filter(content_type__app_label=app_label)
            wanted = in_app.filter(codename__in=[c for c in codenames if c != "view"])
            if "view" in codenames:
                wanted = wanted | in_app.filter(codename__startswith="view_")
            group.permissions.add(*wanted)
    return group


def permission(dotted: str) -> Permission:
    """``"app_label.codename"`` -> the Permission row."""
    app_label, codename = dotted.split(".", 1)
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


class UserFactory(DjangoModelFactory):
    """A user with password ``DEFAULT_PASSWORD``.

    ``groups=[...]`` takes group names (role groups are created if missing) or ``Group``
    objects; ``perms=[...]`` takes ``"app_label.codename"`` strings.
    """

    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    is_staff = False
    is_superuser = False
    password = factory.django.Password(DEFAULT_PASSWORD)

    @factory.post_generation
    def groups(self, create: bool, extracted: Iterable[str | Group] | None, **kwargs):
        if not create or not extracted:
            return
        self.groups.add(*(g if isinstance(g, Group) else role_group(g) for g in extracted))

    @factory.post_generation
    def perms(self, create: bool, extracted: Iterable[str] | None, **kwargs):
        if not create or not extracted:
            return
        self.user_permissions.add(*(permission(p) for p in extracted))


class StaffUserFactory(UserFactory):
    """A user who may log in to the admin (what it may do there comes from groups/perms)."""

    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True


class SuperUserFactory(StaffUserFactory):
    username = factory.Sequence(lambda n: f"admin{n}")
    is_superuser = True
