"""Account health, computed from our own data: the channel metrics per channel and program
(``metrics``), warehouse packing capacity (``capacity``), snapshots, alerts and defect entry
(``services``) and the check against the channel's own report (``report``).

The models live in ``oms.models`` (Django loads an app's models from there); the admin in
``oms.admin_health``; the front-page dashboard in ``oms.dashboard``.
"""
