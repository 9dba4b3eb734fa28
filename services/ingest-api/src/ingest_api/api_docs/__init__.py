"""Swagger UI at ``/api/docs``, served entirely from the stack (no CDN)."""
