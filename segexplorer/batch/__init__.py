"""Many images with one model: ``segexplorer batch`` (no Qt).

* :mod:`.inputs`: a folder, a glob or a list of paths, as images with stable keys;
* :mod:`.options`: what a batch is asked (``BatchOptions``) and what it reports;
* :mod:`.record`: ``run.json`` (the arguments; others are refused) and the journal;
* :mod:`.writer`: the one writer of a batch folder (image folders, then journal lines);
* :mod:`.analyse`: the per-image stages both engines run (prepare, analyse, files);
* :mod:`.pipeline`: decoding ahead of the model, writer threads behind it;
* :mod:`.run`: the run (the local engine: the pipeline in this process);
* :mod:`.ray_engine`: the same pipeline in each actor of a Ray Data actor pool;
* :mod:`.progress`: the bar, the log lines, images/s and the ETA (no Qt, no torch);
* :mod:`.summary` and :mod:`.tables`: the dataset insight and its files (no torch).
"""
