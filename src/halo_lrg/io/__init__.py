"""Where bytes come from and go to: one URI parser, one retry policy, HTTP(S) and S3
transfers, fetching inputs and writing a run's outputs. Imports only :mod:`halo_lrg.config`."""
