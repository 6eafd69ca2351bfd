"""Fly.io for container workers (spec 003): `client` speaks the Machines REST API (`bodies`, its
JSON), `machines` starts and destroys a run's machine under its name, and `settings` reads a
workspace's Fly settings with its token opened. `libs.flyserver` is the local server it is
tested against."""
