"""Many images with one model: ``segexplorer batch`` (no Qt).

* :mod:`.inputs`: a folder, a glob or a list of paths, as images with stable keys;
* :mod:`.record`: ``run.json`` (the arguments; others are refused) and the journal;
* :mod:`.analyse`: the per-image function both engines run (``explain``'s files, rows);
* :mod:`.run`: the run (local engine: a loop with decoding ahead in a thread);
* :mod:`.ray_engine`: the same per-image function in a Ray Data actor pool;
* :mod:`.summary` and :mod:`.tables`: the dataset insight and its files (no torch).
"""
