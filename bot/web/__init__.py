"""Web pages: the dev phone (console mode), later the facility desk and tablet."""
