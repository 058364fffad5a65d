"""One MiniLM training step under bf16 autocast against fp32 on this CPU: the groundwork of precision auto.

    OMP_NUM_THREADS=1 python benchmarks/bf16_step.py [--batch-size 16] [--length 48] [--steps 8] [--rounds 3]

A step is the shared loop's: forward under the run's autocast (mixtune.device), backward, clipping, the AdamW
step (mixtune.optim), on the default model (all-MiniLM-L6-v2) with random token ids of exactly --length tokens.
fp32 and bf16 alternate for --rounds rounds of --steps steps each (a busy machine slows both alike); each
precision's time is its fastest round's mean step, in CPU seconds of this process (with more than one
thread they add up across threads: compare at one thread). Prints the CPU's bf16 features (AMX-BF16, AVX512-BF16: from
/proc/cpuinfo), both times and fp32 / bf16 (above 1: bf16 is faster). Costs about a minute on one thread.
mixtune.device.auto_precision keeps CPUs in fp32 until score parity is measured; this says whether it is worth it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from mixtune.data.examples import TaskSpec
from mixtune.device import Runtime, activated, cpu_has_amx_bf16
from mixtune.models import load_model
from mixtune.optim import decay_groups, make_optimizer
from mixtune.train import batch_loss


def cpu_flags() -> str:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    return ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in ("amx_bf16", "avx512_bf16"))


def round_seconds(model, optimizer, batch: dict, precision: str, steps: int) -> float:
    """Mean CPU seconds of one step over `steps` steps under `precision` (on one thread: robust to a busy machine)."""
    with activated(Runtime(torch.device("cpu"), precision)):
        started = time.process_time()
        for _ in range(steps):
            batch_loss(model, batch, scaled=True).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return (time.process_time() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--length", type=int, default=48)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    spec = TaskSpec(name="bench", kind="classification", text_columns=["sentence"], label_names=["0", "1"], metrics=["accuracy"])
    _, model, _ = load_model(None, spec, seed=0)
    model.train()
    optimizer = make_optimizer(decay_groups(model.named_parameters(), 0.01), lr=1e-5)
    generator = torch.Generator().manual_seed(0)
    batch = {
        "input_ids": torch.randint(1000, 20000, (args.batch_size, args.length), generator=generator),
        "attention_mask": torch.ones(args.batch_size, args.length, dtype=torch.long),
        "labels": torch.randint(0, 2, (args.batch_size,), generator=generator),
    }
    for precision in ("fp32", "bf16"):  # warm-up: oneDNN picks and caches its kernels on the first calls
        round_seconds(model, optimizer, batch, precision, 2)
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(args.rounds):
        for precision in times:
            times[precision].append(round_seconds(model, optimizer, batch, precision, args.steps))
    fp32, bf16 = min(times["fp32"]), min(times["bf16"])
    print(f"CPU: {cpu_flags()} (AMX-BF16 seen by mixtune: {cpu_has_amx_bf16()}); {torch.get_num_threads()} thread(s), "
          f"torch {torch.__version__}")
    print(f"step of {args.batch_size} x {args.length} tokens: fp32 {1000 * fp32:.0f} ms, bf16 autocast {1000 * bf16:.0f} ms, "
          f"fp32 / bf16 = {fp32 / bf16:.2f}")


if __name__ == "__main__":
    main()
