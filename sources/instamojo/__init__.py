"""dlt source for Instamojo's developer-platform API (see source.py)."""
