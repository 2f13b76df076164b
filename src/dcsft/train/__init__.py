"""Post-training: TRL wrappers (library) and the `train` stage."""
