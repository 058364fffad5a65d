"""The GPU check's Python part (benchmarks/gpu_check.sh runs it): every method briefly on CUDA, one short run on
the CPU and on the GPU side by side, and the step timings on the GPU. The default model (all-MiniLM-L6-v2, from
its package: no network) on GLUE tasks from --data-dir.

    python benchmarks/gpu_check.py [--data-dir ../shared/data/glue] [--sections methods,compare,timing]

methods   every registered method, 32 RTE examples, 1 epoch (mixup-blo: 2 search splits of 1 epoch), exported and
          checked, in fp32; the methods with their own gradient handling also in bf16 and fp16; and mixup-blo's
          search with search.workers 2 against 1
merge     mixup's export after evaluation under each precision's autocast (issue 30): the merged weights against a
          W~ merged afresh in float64 on the CPU, with alpha near 1 (|1 - coef| about 1e-3, under bf16's spacing)
compare   vanilla on 128 SST-2 examples, 2 epochs, on the CPU and on the GPU (fp32): test metrics and final losses
timing    per precision: a vanilla step, a finetune-phase step (mixup injected, alpha frozen) and a bi-level
          iteration (an inner step and a first-order alpha step), median of --steps, batch 16 x 128 tokens, through
          the functions a run uses; ratios to the vanilla step
Exit status 1 if any method or merge check failed. `--device cpu` runs the same on the CPU (to try the script without a GPU).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from mixtune.config import build_config
from mixtune.data.glue import glue_task
from mixtune.device import Runtime, activated
from mixtune.methods import METHODS
from mixtune.models import load_model, quiet_transformers
from mixtune.run import run

GRADIENT_METHODS = ("vanilla", "mixup-blo", "child-tuning-f", "child-tuning-d", "dps")  # also in bf16 and fp16
SECTIONS = ("methods", "merge", "compare", "timing")
MERGE_TOLERANCE = 1e-6  # relative: an fp32 W~ is about 1e-7 off float64, one formed in bf16 about 1e-3


def short_run(data_dir: str, method: str, device: str, precision: str = "fp32", task: str = "rte", **sections) -> dict:
    values = {
        "method": method, "seed": 1, "device": device, "precision": precision,
        "data": {"task": task, "data_dir": data_dir, "train_size": 32},
        "train": {"epochs": 1, "max_length": 64, "batch_size": 16},
        "search": {"splits": 2, "epochs": 1},
    }
    for section, changes in sections.items():
        values.setdefault(section, {}).update(changes)
    return build_config(values)


def main_metric(record: dict) -> str:
    metric = record["main_metric"]
    return ", ".join(f"{split} {scores[metric]:.2f}" for split, scores in record["metrics"].items())


def check_methods(data_dir: str, device: str) -> int:
    print(f"== every method on {device} (32 RTE examples, 1 epoch; exported and reloaded)")
    setfit = importlib.util.find_spec("setfit") is not None
    failed = 0
    plan = [(m, "fp32") for m in sorted(METHODS)]
    if device != "cpu":
        plan += [(m, p) for p in ("bf16", "fp16") for m in GRADIENT_METHODS if m in METHODS]
    for method, precision in plan:
        if method == "setfit" and not setfit:
            print(f"skipped {method:<16} {precision}: setfit is not installed (pip install 'mixtune[setfit]')")
            continue
        started = time.perf_counter()
        try:
            with tempfile.TemporaryDirectory() as scratch:
                config = short_run(data_dir, method, device, precision)
                config.output_dir = str(Path(scratch) / "run")
                record = run(config, progress=False)
        except Exception as exc:  # noqa: BLE001  (every method is tried; each failure is one line)
            failed += 1
            print(f"FAILED  {method:<16} {precision}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        diff = record["export"]["max_abs_logit_diff"]
        print(f"ok      {method:<16} {precision}: {main_metric(record)} | export diff {diff:.1e} | "
              f"{time.perf_counter() - started:.1f} s on {record['device']['device']}")
    one, two = (run(short_run(data_dir, "mixup-blo", device, search={"splits": 2, "workers": w}), progress=False, write=False)
                for w in (1, 2))
    same = one["metrics"] == two["metrics"] and one["log"]["finetune"]["final_loss"] == two["log"]["finetune"]["final_loss"]
    gap = abs(one["log"]["finetune"]["final_loss"] - two["log"]["finetune"]["final_loss"])
    print(f"mixup-blo search.workers 2 against 1: {'identical' if same else f'differ (final loss by {gap:.2e})'}"
          f" ({main_metric(one)} / {main_metric(two)})")
    return failed


def float64_merge(layer: torch.nn.Module) -> torch.Tensor:
    """W~ of a float64 CPU copy of the layer, from its coefficients: no cache, no autocast."""
    wide = copy.deepcopy(layer).to("cpu", torch.float64)
    with torch.no_grad():
        on_task, on_pretrained = wide.coefficients()
        return on_task * wide.base_layer.weight + on_pretrained * wide.weight0


def check_mixup_merge(device: str) -> int:
    """The mixup model evaluated under each precision on `device`, then merged: its weights against float64 W~."""
    from mixtune.config import MixupConfig
    from mixtune.mixup import inject_mixup, merge_and_unload, mixup_layers
    from mixtune.mixup.inject import set_alpha_trainable
    from mixtune.train import batch_loss

    print(f"== mixup merged after evaluation under autocast on {device}: max |W~ - W~_float64| / max |W~| over layers")
    tokenizer, model, _ = load_model(None, glue_task("rte").spec, seed=0)
    inject_mixup(model, MixupConfig(form="released"))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _, layer in mixup_layers(model):
            layer.reset_alpha(0.9993, 2e-4, generator)  # coef_W about 0.9986: the released alpha's learned scale
            layer.base_layer.weight.add_(torch.randn(layer.weight0.shape, generator=generator), alpha=0.01)
    set_alpha_trainable(model, False)
    references = {name: float64_merge(layer) for name, layer in mixup_layers(model)}
    batch = make_batches(tokenizer, 1, 4, 32)[0]
    failed = 0
    for precision in ("fp32", "bf16", "fp16") if device != "cpu" else ("fp32", "bf16"):
        runtime = Runtime.resolve(device, precision)
        candidate = runtime.place(copy.deepcopy(model))
        with activated(runtime), torch.no_grad():
            batch_loss(candidate, batch, scaled=True)  # evaluation: every layer's cache filled under autocast
        merge_and_unload(candidate)
        gap = max(
            ((candidate.get_submodule(name).weight.double().cpu() - ref).abs().max() / ref.abs().max()).item()
            for name, ref in references.items()
        )
        ok = gap < MERGE_TOLERANCE
        failed += not ok
        print(f"{'ok' if ok else 'FAILED':<8}{precision}: {gap:.1e} (tolerance {MERGE_TOLERANCE:.0e})")
    return failed


def compare_devices(data_dir: str, device: str) -> None:
    print(f"== one short run on the cpu and on {device} (vanilla, 128 SST-2 examples, 2 epochs, fp32)")
    records = {}
    for where in ("cpu", device):
        config = short_run(data_dir, "vanilla", where, task="sst2", train={"epochs": 2})
        config.data.train_size = 128
        started = time.perf_counter()
        records[where] = run(config, progress=False, write=False)
        records[where]["wall"] = time.perf_counter() - started
    for where, record in records.items():
        print(f"{where:<8} {main_metric(record)} | final loss {record['log']['finetune']['final_loss']:.5f} | "
              f"selected step {record['log']['finetune'].get('selected_step')} | {record['wall']:.1f} s")
    cpu, gpu = records["cpu"], records[device]
    metric = cpu["main_metric"]
    gaps = {split: abs(cpu["metrics"][split][metric] - gpu["metrics"][split][metric]) for split in cpu["metrics"]}
    loss_gap = abs(cpu["log"]["finetune"]["final_loss"] - gpu["log"]["finetune"]["final_loss"])
    print(f"difference: {', '.join(f'{s} {g:.2f}' for s, g in gaps.items())} points; final loss {loss_gap:.2e}")


def make_batches(tokenizer, count: int, batch_size: int, length: int) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(count):
        ids = torch.randint(1000, tokenizer.vocab_size, (batch_size, length), generator=generator)
        labels = torch.randint(0, 2, (batch_size,), generator=generator)
        batches.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels})
    return batches


def time_steps(device: str, precision: str, steps: int) -> dict[str, float]:
    """Median seconds of one step per mode, through train_loop and bilevel_search as a run calls them."""
    from mixtune.methods.mixup_blo import MixupBLO
    from mixtune.methods.vanilla import Vanilla
    from mixtune.mixup import bilevel_search, inject_mixup
    from mixtune.mixup.inject import set_alpha_trainable
    from mixtune.train import FitContext, train_loop

    runtime = Runtime.resolve(device, precision)
    config = build_config({"device": device, "precision": precision, "search": {"epochs": 1}})
    spec = glue_task("rte").spec
    timings = {}
    with activated(runtime):
        for mode in ("vanilla", "finetune", "bi-level"):
            tokenizer, model, _ = load_model(None, spec, seed=0)
            runtime.place(model)
            if mode != "vanilla":
                inject_mixup(model, config.mixup)
            if mode == "finetune":
                set_alpha_trainable(model, False)
            method = Vanilla(config) if mode == "vanilla" else MixupBLO(config)
            ctx = FitContext([], tokenizer, config, seed=0, progress=False)
            train, val = make_batches(tokenizer, steps + 2, 16, 128), make_batches(tokenizer, steps + 2, 16, 128)
            seconds = []
            for i in range(steps + 2):  # the first two warm up (kernels, allocator)
                if runtime.device.type == "cuda":
                    torch.cuda.synchronize()
                started = time.perf_counter()
                if mode == "bi-level":
                    bilevel_search(model, train[i : i + 1], val[i : i + 1], config.search, progress=False)
                else:
                    train_loop(model, train[i : i + 1], method, 2e-5, 1, ctx, desc=mode)
                if runtime.device.type == "cuda":
                    torch.cuda.synchronize()
                seconds.append(time.perf_counter() - started)
            timings[mode] = statistics.median(seconds[2:])
            del model
    return timings


def timing(device: str, steps: int) -> None:
    name = torch.cuda.get_device_name(torch.device(device)) if device != "cpu" else "the CPU"
    print(f"== step timings on {name} ({device}): batch 16 x 128 tokens, median of {steps} steps")
    print(f"{'precision':<10} {'vanilla step':>13} {'finetune-phase step':>26} {'bi-level iteration':>26}")
    for precision in ("fp32", "bf16", "fp16") if device != "cpu" else ("fp32", "bf16"):
        t = time_steps(device, precision, steps)
        base = t["vanilla"]
        print(f"{precision:<10} {1000 * base:>10.1f} ms {1000 * t['finetune']:>12.1f} ms ({t['finetune'] / base:.2f}x)"
              f" {1000 * t['bi-level']:>12.1f} ms ({t['bi-level'] / base:.2f}x)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data/glue")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cuda:N; cpu to try the script without a GPU")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    if args.device != "cpu" and not torch.cuda.is_available():
        print(f"gpu_check: no CUDA GPU visible to torch {torch.__version__}: run it on a machine with one", file=sys.stderr)
        return 2
    if not Path(args.data_dir).is_dir():
        print(f"gpu_check: no GLUE data at {args.data_dir}: pass --data-dir", file=sys.stderr)
        return 2
    quiet_transformers()
    device = str(Runtime.resolve(args.device).device)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    failed = 0
    started = time.perf_counter()
    if "methods" in sections:
        failed = check_methods(args.data_dir, device)
    if "merge" in sections:
        failed += check_mixup_merge(device)
    if "compare" in sections:
        compare_devices(args.data_dir, device)
    if "timing" in sections:
        timing(device, args.steps)
    print(f"== {failed} check(s) failed; {time.perf_counter() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
