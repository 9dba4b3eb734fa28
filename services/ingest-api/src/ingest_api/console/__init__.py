"""The web console at ``/`` (the single-page app built from the repository's console/ directory)."""
