"""Station watchers, readiness, metadata, media derivatives and the ingest pipeline."""
