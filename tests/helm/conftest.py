"""Fixtures of the Helm chart tests; the helpers live in helm_support.py."""

from tests.helm.helm_support import helm, render

__all__ = ["helm", "render"]
