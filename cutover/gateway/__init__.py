"""The memory gateway: flag evaluation per request, dual-run with a durable outbox, shadow reads and
drift, fallback to legacy, metrics, and the HTTP app around it."""
