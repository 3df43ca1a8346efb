"""The oracle: the float64 NumPy reference and the tolerance table with its checker."""
