"""rmsnorm_flax: the flax backend of rmsnorm-bridge (under construction)."""
