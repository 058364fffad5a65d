"""User-facing errors: the CLI prints the message on one line and exits with code 2."""


class MixtuneError(Exception):
    """A problem with the user's input; the message names the problem and the fix."""


class TrainingDiverged(MixtuneError):
    """The loss or the weights left finite, sensible values: the run fails with this reason."""
