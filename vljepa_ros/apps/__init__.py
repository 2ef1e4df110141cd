"""The entry points (vjepa2's ``app/``): training, evaluation, the benchmark
and the environment report. Each module is a command (``python -m
vljepa_ros.apps.<name>`` or its ``vljepa-*`` console script) over the library
around it; nothing in the library imports them."""
