"""Agents in: the gRPC stream service, result validation, batched inserts into the store."""
