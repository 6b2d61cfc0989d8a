"""The Spark engine: a session for the CLI, the per-file job, and the run that writes a CSV
and manifest. Only this subpackage (and the CLI above it) imports pyspark."""
