"""The pipeline and its command line: dlt pipelines per merchant, the sync orchestration, the
demo, merchant onboarding and the benchmark. `python -m pipelines --help`."""
