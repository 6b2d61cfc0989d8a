"""spark-submit entry point for the halo-lrg LRG-count job: takes the flags of ``halo-lrg run``.

The code is ``halo_lrg/aws/jobs/lrg_density.py`` (package data: what ``halo-lrg submit``
uploads as the EMR step's script); this file runs that same code, from the halo_lrg that
``--py-files`` ships (the wheel on YARN; the same bytes under a .zip name on local and
standalone masters, which import only .zip/.egg)::

    spark-submit --master spark://host:7077 --py-files halo_lrg-0.1.0.zip \\
        jobs/lrg_density.py --index s3://bucket/sweeps.txt --output s3://bucket/run1
"""

from halo_lrg.aws.artifacts import run_job_script

if __name__ == "__main__":
    run_job_script("lrg_density.py")
