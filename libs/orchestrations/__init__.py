"""Spec 004 orchestration definitions: reading, checking and serving them."""
