"""Running on AWS EMR: the ``run_job_flow`` request and executor sizing (pure), and the
client side that uploads artefacts, launches, polls and fetches (boto3)."""
