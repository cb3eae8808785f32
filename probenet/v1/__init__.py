"""Generated wire code; see proto/generate.py."""
