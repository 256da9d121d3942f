"""Object stores, digests, retention and the services that make catalog decisions durable."""
