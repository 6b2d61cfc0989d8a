"""The LRG selections, pure numpy: :mod:`halo_lrg.science.cuts` under its notebook name.

``import halo_lrg.cuts`` loads no pyspark, fitsio or pandas::

    from halo_lrg.cuts import get_selection
    mask = get_selection("desi-lrg")(catalogue)
"""

from halo_lrg.science.cuts import *  # noqa: F403 - this module is the public alias
from halo_lrg.science.cuts import __all__  # noqa: F401
