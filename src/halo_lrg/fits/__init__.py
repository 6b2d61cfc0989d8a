"""FITS binary tables: one layout model (header cards to fields, offsets, logicals, scaling,
HDU choice) and the readers built on it. Imports nothing else from halo_lrg."""
