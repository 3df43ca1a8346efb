"""Finding flax's norms in a model and replacing them with ours.

Below ``linen`` and ``nnx``, which offer it as ``intercept_norms`` and ``replace_norms``.
"""
