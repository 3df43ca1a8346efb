"""Scale-out: shard_map / multi-process checks."""
