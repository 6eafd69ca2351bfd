"""The published documents, built from the code: a JSON Schema per wire contract, the product's
OpenAPI document and the bus's AsyncAPI document (`just contracts`: `python -m exports`).

The top layer, beside the tests: it reads the gateway's and the stream service's apps and the
aggregates' event classes, so neither `contracts/` (which imports nothing of ours) nor `libs/`
(which never imports a service) can hold it. Nothing imports it but the tests; it does not ship.
"""
