"""Stand-in for an external repository's training command (tests of the command trainable).

It has the reference repository's interface (yinglunz/A-456-Parameter-Transformer-Solves-10-Digit-
Addition: `python -m src.train` with its flags, `<run-dir>/metrics.csv` with columns step,
train_loss, val_exact, val_token_acc, lr, elapsed_sec, and `<run-dir>/checkpoints/best.pt` in its
checkpoint format) and trains with reprotune's own addition trainable behind it. Test-only flags:
--crash-at-step N exits with code 3 at step N, --crash-if-seed S does so after step 0 when the seed
is S, --hang sleeps forever after the first row.
"""

import argparse
import csv
import sys
import time
from pathlib import Path

from trainables.addition.config import ModelConfig, TrainConfig
from trainables.addition.train import train


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--run-name", default="run")
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--seed", type=int, default=42)
    for name, default in (("d-model", 7), ("d-ff", 14), ("pos-rank", 0), ("qkv-rank", 0), ("attn-out-rank", 0),
                          ("ffn-rank", 0), ("train-steps", 27000), ("warmup-steps", 1350), ("eval-interval", 1000),
                          ("val-size", 5000), ("test-size", 10000), ("batch-size", 512)):
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--use-rmsnorm", action="store_true")
    p.add_argument("--tie-qkv", default="none")
    p.add_argument("--crash-at-step", type=int, default=-1)
    p.add_argument("--crash-if-seed", type=int, default=-1)
    p.add_argument("--hang", action="store_true")
    a = p.parse_args()
    model = ModelConfig(d_model=a.d_model, d_ff=a.d_ff, pos_rank=a.pos_rank, qkv_rank=a.qkv_rank,
                        attn_out_rank=a.attn_out_rank, ffn_rank=a.ffn_rank, use_rmsnorm=a.use_rmsnorm,
                        tie_qkv=a.tie_qkv)
    config = TrainConfig(seed=a.seed, train_steps=a.train_steps, warmup_steps=min(a.warmup_steps, a.train_steps - 1),
                         eval_interval=a.eval_interval, val_size=a.val_size, test_size=a.test_size,
                         batch_size=a.batch_size, lr=a.lr)
    a.run_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = a.run_dir / "metrics.csv"
    with open(metrics_path, "w", newline="") as f:
        csv.writer(f).writerow(["step", "train_loss", "val_exact", "val_token_acc", "lr", "elapsed_sec"])
    start = time.time()

    def report(metrics, _):
        step = int(metrics["step"])
        if step >= a.crash_at_step >= 0 or (a.seed == a.crash_if_seed and step > 0):
            print(f"simulated crash at step {step}", flush=True)
            sys.exit(3)
        with open(metrics_path, "a", newline="") as f:
            csv.writer(f).writerow([step, metrics["train/loss"], metrics["val/exact_match"],
                                    metrics["val/token_accuracy"], metrics["lr"], time.time() - start])
        print(f"step={step:6d} loss={metrics['train/loss']:.4f} val_exact={metrics['val/exact_match']:.4f}", flush=True)
        if a.hang:
            time.sleep(3600)

    summary = train(model, config, a.run_dir / "checkpoints", report=report)
    print(f"best_val_exact={summary.best_val_exact_match} best_step={summary.best_step}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
