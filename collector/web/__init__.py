"""The HTTP API: a base of JSON/error/auth helpers, one module per route group, the status page."""
