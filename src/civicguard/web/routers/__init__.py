"""One router per API resource; each calls platform services and nothing else."""
