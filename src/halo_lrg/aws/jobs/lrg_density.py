"""spark-submit entry point for the halo-lrg LRG-count job.

Takes exactly the flags of ``halo-lrg run`` (see ``--help``); the master and Spark settings
come from spark-submit. The package travels with ``--py-files`` (the wheel on YARN/EMR; the
same bytes under a .zip name on local and standalone masters, which import only .zip/.egg).
``halo-lrg submit`` uploads this file as the EMR step's script and passes ``--config`` (the
launching machine's whole configuration, on S3), ``--index``, ``--output`` and any footprint::

    spark-submit --master yarn --py-files halo_lrg-0.1.0-py3-none-any.whl \\
        lrg_density.py --config s3://bucket/code/halo-lrg.toml \\
        --index s3://bucket/sweeps.txt --output s3://bucket/run1

This file is package data (``halo_lrg/aws/jobs/``, read with importlib.resources), so an
installed halo-lrg can upload it; ``jobs/lrg_density.py`` in a checkout runs this same code.
"""

from halo_lrg.cli.run import run_command
from halo_lrg.spark.session import stop_session

if __name__ == "__main__":
    try:
        run_command(prog_name="lrg_density.py")
    finally:
        # Stop Spark before the interpreter exits, so executors are released cleanly rather
        # than killed by JVM shutdown hooks mid-relaunch.
        stop_session()
