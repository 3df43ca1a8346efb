"""The backend registry: entry points, runners, formats, exporters, benchmarks."""
