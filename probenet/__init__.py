"""Wire code shared by probe_agent and collector (generated; see proto/generate.py)."""
