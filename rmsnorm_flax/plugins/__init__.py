"""What core's tools see: the backend entry point, verify runners, benchmarks."""
