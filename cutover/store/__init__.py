"""The memory stores: the record model, the legacy (jido_memory) and MemoryOS stores on SQLite, the
HTTP adapter and the fault-injecting wrapper."""
