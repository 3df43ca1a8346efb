"""The norm: the modules, the functional API, the call's plan and its cache."""
