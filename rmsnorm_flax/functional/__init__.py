"""The norm: the pure functions, the JAX kernel with its VJP, the fields linen and nnx share."""
