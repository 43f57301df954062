"""Operations: the rollback controller and its webhook, the FeatureFlag back end of the flags, the
watch after a flag change, and the rehearsal that runs the campaign on loopback. The flag state and
its changes are `cutover.flags`."""
