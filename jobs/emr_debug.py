"""EMR hello-world (``halo-lrg submit --debug``): Spark, executor imports, S3, memory.

The code is ``halo_lrg/aws/jobs/emr_debug.py`` (package data, uploaded as the debug step's
script, self-contained there); this file runs that same code from the shipped halo_lrg::

    spark-submit --py-files halo_lrg-X.zip jobs/emr_debug.py --output s3://b/p
"""

from halo_lrg.aws.artifacts import run_job_script

if __name__ == "__main__":
    run_job_script("emr_debug.py")
