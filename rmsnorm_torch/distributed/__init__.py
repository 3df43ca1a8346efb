"""Scale-out: DTensor layouts and the 2-process runner."""
