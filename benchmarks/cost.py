"""Cost of the method's steps against a vanilla step, measured side by side in one run.

    python benchmarks/cost.py [--steps 12] [--batch-size 16] [--length 128] [--out results/cost.json]
                              [--other-model FOLDER]

Each mode runs in its own fresh process (so peak memory is its own) on the same batches of the default
model (all-MiniLM-L6-v2), through the same functions a real run uses:
  vanilla        one step of the shared training loop, plain model
  child-tuning-f the same with CHILD-TUNING_F's fresh gradient mask (also mixup-blo's finetune_mask_p)
  finetune       one step of the shared loop with mixup injected and alpha frozen (mixup-blo's finetune phase)
  blo-first      one bi-level iteration: an inner step on a D_tr batch + a first-order alpha step on a D_val batch
  blo-fd         the same with the finite-difference (DARTS second-order) hypergradient
  other-model    (with --other-model) a vanilla step of another backbone: what a run on it costs, per step
Targets (issue 2): finetune <= 1.10x vanilla, blo-first <= 2.1x vanilla.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import statistics
import sys
import time
from pathlib import Path

MODES = ("vanilla", "child-tuning-f", "finetune", "blo-first", "blo-fd")
TARGETS = {"finetune": 1.10, "blo-first": 2.1}


def make_batches(tokenizer, count: int, batch_size: int, length: int) -> list[dict]:
    import torch

    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(count):
        ids = torch.randint(1000, tokenizer.vocab_size, (batch_size, length), generator=generator)
        batches.append({
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "labels": torch.randint(0, 2, (batch_size,), generator=generator),
        })
    return batches


def measure(mode: str, steps: int, batch_size: int, length: int, queue, model_name: str | None = None) -> None:
    """Runs in a child process: per-step seconds (after warm-up) and this process's peak memory."""
    import torch

    from mixtune.config import RunConfig
    from mixtune.data.examples import TaskSpec
    from mixtune.methods import make_method
    from mixtune.methods.mixup_blo import MixupBLO
    from mixtune.methods.vanilla import Vanilla
    from mixtune.mixup import bilevel_search, inject_mixup
    from mixtune.mixup.inject import set_alpha_trainable
    from mixtune.models import load_model
    from mixtune.run import peak_memory_mb
    from mixtune.train import FitContext, train_loop

    spec = TaskSpec("bench", "classification", ["a", "b"], ["0", "1"], ["accuracy"])
    tokenizer, model, _ = load_model(model_name, spec, seed=0)
    config = RunConfig()
    config.search.hypergradient = "finite-difference" if mode == "blo-fd" else "first-order"
    config.search.epochs = 1  # one pass over the given batches: one iteration per batch
    ctx = FitContext([], tokenizer, config, seed=0, progress=False)
    plain = mode in ("vanilla", "other-model", "child-tuning-f")
    if mode == "child-tuning-f":
        config.method = mode
        method = make_method(config)
    else:
        method = Vanilla(config) if plain else MixupBLO(config)
    if not plain:
        inject_mixup(model, config.mixup)
    if mode == "finetune":
        set_alpha_trainable(model, False)
    warmup = 2
    batches = make_batches(tokenizer, warmup + steps, batch_size, length)
    val_batches = make_batches(tokenizer, warmup + steps, batch_size, length)

    def run_steps(train, val) -> float:
        started = time.perf_counter()
        if plain or mode == "finetune":
            train_loop(model, train, method, 2e-5, 1, ctx, desc=mode)
        else:
            bilevel_search(model, train, val, config.search, progress=False)
        return time.perf_counter() - started

    torch.manual_seed(0)
    run_steps(batches[:warmup], val_batches[:warmup])
    seconds = [run_steps(batches[i : i + 1], val_batches[i : i + 1]) for i in range(warmup, warmup + steps)]
    queue.put({"mode": mode, "step_s": statistics.median(seconds), "peak_mb": peak_memory_mb(), "threads": torch.get_num_threads()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--out", default="results/cost.json")
    parser.add_argument("--other-model", help="a model folder or hub id whose vanilla step is measured too")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="vanilla is always measured")
    args = parser.parse_args()
    context = mp.get_context("spawn")
    results = {}
    modes = ["vanilla", *(m for m in args.modes if m != "vanilla")]
    for mode in modes + (["other-model"] if args.other_model else []):
        queue = context.Queue()
        model_name = args.other_model if mode == "other-model" else None
        process = context.Process(target=measure, args=(mode, args.steps, args.batch_size, args.length, queue, model_name))
        process.start()
        results[mode] = queue.get()
        process.join()
    base = results["vanilla"]
    print(f"{'mode':<10} {'step s':>8} {'ratio':>6} {'peak MB':>8}  target")
    for mode, r in results.items():
        r["ratio"] = r["step_s"] / base["step_s"]
        target = TARGETS.get(mode)
        verdict = "" if target is None else f"<= {target:.2f}x {'met' if r['ratio'] <= target else 'MISSED'}"
        print(f"{mode:<10} {r['step_s']:>8.3f} {r['ratio']:>5.2f}x {r['peak_mb']:>8.0f}  {verdict}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"batch_size": args.batch_size, "length": args.length, "steps": args.steps, "machine": platform.machine(),
            "cpus": mp.cpu_count(), "other_model": args.other_model,
            "command": " ".join(["python", "benchmarks/cost.py", *sys.argv[1:]])}
    out.write_text(json.dumps({"settings": meta, "results": results}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
