"""Scale-out engines for large jobs (``--engine ray``): the same batch and video jobs as local mode, run on
a Ray cluster."""
