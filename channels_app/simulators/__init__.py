"""Local simulators of each channel's real API, for tests, benchmarks and the demo."""
