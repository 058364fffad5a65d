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
# The methods whose own pair encoding is not "auto" (Method.pair_encoding), for --pair-encoding's help.
OWN_PAIR_ENCODINGS = {"linear-probe": "separate", "prefix-tuning": "joint", "prompt-tuning": "joint"}
# The default learning rate and epochs (Method.default_lr, default_epochs) of most methods, and of the others.
COMMON_LR, COMMON_EPOCHS = 2e-5, 10
OWN_LRS = {
    "mixup-blo": 2e-4, "soup-start": 2e-4, "bitfit": 1e-3, "child-tuning-d": 4e-5, "child-tuning-f": 4e-5,
    "lora": 5e-4, "prefix-tuning": 5e-3, "prompt-tuning": 1e-2,
}
OWN_EPOCHS = {"setfit": 1}
# The weight average a method's finetune takes when train.average is unset and train.select is last (issue 32's
# recipe: SWA over the last half of mixup-blo's masked finetune; soup-start, its control, the same); none otherwise.
OWN_AVERAGES = {"mixup-blo": "swa", "soup-start": "swa"}
