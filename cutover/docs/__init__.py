"""The MkDocs hooks that generate the runbook's phase, alert and reference pages from the plan."""
