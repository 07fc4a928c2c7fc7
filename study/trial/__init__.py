"""One trial: its stages, how each is trained, evaluated and separated (python -m study.trial)."""
