"""Agents in: the gRPC stream service (server.py), input validation (validate.py) and the
batched, replay-safe inserts into the store that acks follow (ingestor.py)."""

from collector.ingest.ingestor import Identity, Ingestor
from collector.ingest.server import CollectorService, add_to_server
from collector.ingest.validate import Validator

__all__ = ["CollectorService", "Identity", "Ingestor", "Validator", "add_to_server"]
