"""Operations: the flag state and its changes, the rollback controller, and the rehearsal that runs
the campaign on loopback."""
