"""What one ``train.py`` run needs besides parsing its command (``lightning_nas.cli``).

``cli`` decides what kind of run a command is and where it lives; the modules here each do one
thing for that run: ``errors`` (one-line messages from wrapped errors), ``checkpoints`` (reading,
choosing and writing ``RUN_DIR/checkpoints``), ``lock`` (one process per run directory),
``validation`` (trainer values that would make no run), ``progress`` (progress lines for logs),
``output`` (third-party noise and the W&B logger), ``summary`` (what a run prints at its end),
``front_options`` (the options that say what kind of run a command is, never written to a resolved
recipe) and ``reproduce`` (``--reproduce``: rerun and compare). None of them imports
``lightning_nas.cli`` or ``lightning_nas.experiments``.
"""
