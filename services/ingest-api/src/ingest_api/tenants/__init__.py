"""Netskope tenants (``/api/tenants``)."""
