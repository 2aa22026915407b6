"""simkernel's benchmarks: scenario definitions shared by the CLI
(``python -m simkernel.bench``) and the pytest-benchmark suite in ``bench/``."""
