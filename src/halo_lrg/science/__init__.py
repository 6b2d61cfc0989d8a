"""The science: LRG selections, the brick grid, footprints, densities, regions and maps.

Pure numpy (pandas and matplotlib for the tables and plots): no file or network I/O, no
Spark. Imports only :mod:`halo_lrg.config` from the rest of the package.
"""
