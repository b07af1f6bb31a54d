"""Speed and memory benchmarks: ``python -m bench --help``."""
