"""The audit log: every sign-in and every change of configuration, users and tokens (``/api/audit``)."""
