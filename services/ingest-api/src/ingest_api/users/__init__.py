"""Users, their passwords and roles (``/api/users``, ``/api/roles``), and the first administrator."""
