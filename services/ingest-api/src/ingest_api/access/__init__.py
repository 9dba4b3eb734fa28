"""Authentication (``/api/auth``), sign-in lockout and API tokens (``/api/users/tokens``)."""
