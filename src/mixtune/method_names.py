"""The names `--method` accepts, listed without importing the methods (they need torch), so that the CLI lists
them in its help and refuses an unknown one at once. tests/test_cli_help.py keeps this tuple equal to the
registry (mixtune.methods.METHODS)."""

METHOD_NAMES = (
    "mixup-blo",
    "vanilla",
    "joint",
    "random-alpha",
    "soup-start",
    "vanilla-long",
    "bitfit",
    "child-tuning-d",
    "child-tuning-f",
    "dps",
    "linear-probe",
    "lora",
    "lp-ft",
    "mixout",
    "prefix-tuning",
    "prompt-tuning",
    "setfit",
    "wise-ft",
)
