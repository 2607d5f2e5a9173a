"""capsweep's benchmarks: each module or package says in its docstring what it measures and
how to run it (from the repository's root)."""
