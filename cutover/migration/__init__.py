"""Migration: the tiering policy, the backfill (classify, build MemoryOS records, checkpoint) and
reconcile."""
