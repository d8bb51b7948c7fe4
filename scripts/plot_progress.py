#!/usr/bin/env python3
"""Plots a rally run's quality measure against wall time and learner steps.

    python3 scripts/plot_progress.py WORKDIR/progress.jsonl OUT.png [--title TITLE]
        [--measure score|wins]

`rally run` appends the job's progress to WORKDIR/progress.jsonl once a second; each line holds
the latest evaluation round per opponent. This script keeps each round once (by policy version)
and draws, per opponent, exact exploitability (best_response) or the score
(wins + draws / 2) / games, or with --measure wins the win rate wins / games, against wall
seconds and learner steps. Needs python3-matplotlib.
"""
import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def rounds(path, measure):
    """{opponent: [(wall_seconds, learner_steps, value)]}, one point per evaluation round."""
    series = {}
    seen = set()
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            p = json.loads(line)
            for opponent, e in p.get("eval", {}).items():
                if opponent == "league":  # Elo points: another scale, in the evaluator's log
                    continue
                key = (opponent, e.get("policy_version"))
                if key in seen:
                    continue
                seen.add(key)
                if "exploitability" in e:
                    value = e["exploitability"]
                elif e.get("games", 0) > 0 and measure == "wins":
                    value = e["wins"] / e["games"]
                elif e.get("games", 0) > 0:
                    value = (e["wins"] + 0.5 * e["draws"]) / e["games"]
                else:
                    continue
                series.setdefault(opponent, []).append(
                    (e.get("wall_seconds", p["wall_seconds"]), p["learner_steps"], value))
    return series


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("progress")
    ap.add_argument("out")
    ap.add_argument("--title", default="")
    ap.add_argument("--measure", choices=["score", "wins"], default="score",
                    help="sampled games: score (wins + draws / 2) or the win rate")
    args = ap.parse_args()
    series = rounds(args.progress, args.measure)
    if not series:
        sys.exit(f"{args.progress}: no evaluation rounds")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for opponent, points in sorted(series.items()):
        points.sort()
        measure = "win rate" if args.measure == "wins" else "score"
        label = "exploitability" if opponent == "best_response" else f"{measure} vs {opponent}"
        axes[0].plot([p[0] for p in points], [p[2] for p in points], marker=".", label=label)
        axes[1].plot([p[1] for p in points], [p[2] for p in points], marker=".", label=label)
    axes[0].set_xlabel("wall time since submission (s)")
    axes[1].set_xlabel("learner steps")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend()
    if "best_response" in series:
        for ax in axes:
            ax.set_yscale("log")
    fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)


if __name__ == "__main__":
    main()
