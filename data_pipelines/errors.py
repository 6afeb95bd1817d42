"""The one base class of every expected error, from the data files up to the commands.

An :class:`InputError` says that something a user gave (a file, a dataset tree, a config,
a workdir) or a run they started is not what the code needs. Its message is one line that
names the file and what was expected. The ``dface-jax`` command prints that line without a
traceback and exits with status 2; any other exception is a bug and keeps its traceback.
"""


class InputError(Exception):
    """An expected error: bad input, a bad config, a missing or foreign workdir, a run that
    diverged. The message names the file and what was expected."""
