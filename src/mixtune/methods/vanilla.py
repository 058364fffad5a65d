"""Vanilla finetuning: every parameter, AdamW lr 2e-5, wd 0.01, 3 epochs (METHOD.md section 6)."""

from mixtune.methods.base import Method, register


@register
class Vanilla(Method):
    name = "vanilla"
