"""rmsnorm_torch: the torch backend of rmsnorm-bridge (under construction)."""
