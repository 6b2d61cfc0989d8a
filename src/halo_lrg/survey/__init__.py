"""Legacy Surveys conventions: sweep file names and boxes, release directory listings, the
sweep index a run reads, and the generator of DR10-schema sweeps."""
