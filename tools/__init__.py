"""Developer tools: benchmarks (`make bench`) and the notebook runner (`make notebooks`). Not installed."""
