"""Benchmark: seconds per federated round for every defense setting of a config (the default
config.yaml unless --config), on scikit-learn's bundled digits at the config's image size.

Each setting runs --rounds rounds of gradienthide.fl.run_federated (its clients' local
steps, aggregation and the test evaluation), after one warm-up round; the settings are
alternated for --repeats rounds of measurement and the best is kept (CPU time of this
process). Prints seconds per round and the ratio to the `none` setting.

--channels 3 repeats the digits over three channels (for a CIFAR config's model); --only
times the named settings (and `none`, the reference).

Usage: .venv/bin/python bench/train_rounds.py [--config config.yaml] [--rounds 5] [--repeats 2]
       [--channels 3] [--only soteria]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from problems import digit_images

from gradienthide import config as gh_config
from gradienthide.defenses import make_defense
from gradienthide.fl import RoundSettings, run_federated
from gradienthide.models import build_model
from gradienthide.protocol import ClientProtocol

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=None, help="defense settings to time besides none")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = gh_config.load_config(args.config)
    size, clients = config["data"]["image_size"], config["data"]["num_clients"]
    images, labels = digit_images(size)
    images = images.expand(-1, args.channels, -1, -1).contiguous()
    channel_stats = {"mean": images.mean((0, 2, 3)).tolist(), "std": images.std((0, 2, 3)).tolist()}
    test, public, private = slice(0, 297), slice(297, 597), slice(597, None)
    client_data = {c: (images[private][c::clients], labels[private][c::clients]) for c in range(clients)}
    training = dict(config["training"], attack_rounds=[])
    protocol = ClientProtocol.from_config(training)
    runs = gh_config.defense_runs(config)
    if args.only is not None:
        runs = {run_id: run for run_id, run in runs.items() if run_id == "none" or run.defense in args.only}

    def one(run_id: str, rounds: int) -> float:
        run = runs[run_id]
        defense = make_defense(run.defense, run.params)
        torch.manual_seed(0)
        model = defense.adapt_model(build_model(config["model"], (args.channels, size, size), 10,
                                                   channel_stats=channel_stats))
        settings = RoundSettings.from_config(dict(training, rounds=rounds))
        start = time.process_time()
        run_federated(model, client_data, (images[test], labels[test]), defense=defense, protocol=protocol,
                      settings=settings, seed=0, public_data=(images[public], labels[public]), progress=False)
        return (time.process_time() - start) / rounds

    for run_id in runs:  # warm-up
        one(run_id, 1)
    best = {run_id: float("inf") for run_id in runs}
    for _ in range(args.repeats):
        for run_id in runs:
            best[run_id] = min(best[run_id], one(run_id, args.rounds))
    print(f"CPU seconds per round ({config['training']['clients_per_round']} clients x "
          f"{config['training']['local_steps']} local step(s) of batch {config['training']['batch_size']}, "
          f"{args.channels}x{size}x{size}), best of {args.repeats} x {args.rounds} rounds")
    for run_id, seconds in best.items():
        print(f"{run_id:28} {seconds:8.4f} s  {seconds / best['none']:6.2f}x none", flush=True)


if __name__ == "__main__":
    main()
