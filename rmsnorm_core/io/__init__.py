"""File formats: the neutral checkpoint, safetensors (through the library), Hugging Face
folders, name maps, state-dict/param-tree layouts, atomic writes.
"""
