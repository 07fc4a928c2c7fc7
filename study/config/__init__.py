"""Configuration: the validated schema of a trial and the YAML reading that fills it."""
