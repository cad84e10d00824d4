"""An example third-party taskplane runtime plugin (see plugin.py)."""
