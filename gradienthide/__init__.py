"""gradienthide: GradientHide and the defenses and attacks it is compared with, as a library.

The Snakemake workflow (Snakefile, rules/) calls into this package; every stage is a function
in `gradienthide.stages` that can also be used and tested on its own.
"""

__version__ = "0.1.0"
