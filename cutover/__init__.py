"""cutover: a rollout kit that moves an agent memory service from jido_memory to MemoryOS."""

__version__ = "0.1.0"
