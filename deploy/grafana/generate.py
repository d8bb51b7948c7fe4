#!/usr/bin/env python3
"""Writes rally's Grafana dashboards (deploy/grafana/dashboards/*.json) from the panel lists below.

Edit this file, not the JSON, then run `python3 deploy/grafana/generate.py` (or name another
output directory as its argument). The monitoring test
(tests/integration/monitoring_test.cc) runs every panel's query against a real Prometheus
scraping a running cluster and fails when one returns nothing, and checks that the JSON files
are what this script writes.

Every query selects `job=~"$job"` (the Prometheus job variable) and reads the `component` label
that the scrape configuration attaches (control, replay, learner, evaluator, actor).
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
J = 'job=~"$job"'
RI = "$__rate_interval"


def rate(metric, sel="", by=None, window=RI):
    inner = f"rate({metric}{{{J}{sel}}}[{window}])"
    return f"sum by ({by}) ({inner})" if by else f"sum({inner})"


def quantile(q, metric, by="le", sel=""):
    return (f"histogram_quantile({q}, sum by ({by}) "
            f"(rate({metric}_bucket{{{J}{sel}}}[{RI}])))")


def panel(title, targets, unit="short", kind="timeseries", description="", width=12):
    """A panel: `targets` is a list of (PromQL, legend)."""
    return {"title": title, "type": kind, "description": description, "unit": unit,
            "targets": targets, "width": width}


def row(title):
    return {"row": title}


OVERVIEW = ("rally-overview", "rally: overview", "Is the job healthy and learning?", [
    row("Health"),
    panel("Processes up, by component", [(f"sum by (component) (up{{{J}}})", "{{component}}")],
          kind="stat", width=8,
          description="Targets Prometheus scrapes successfully. A component below its expected "
                      "count is down: see RallyProcessDown in docs/operations.md."),
    panel("Job running", [(f"max(rally_control_jobs_active{{{J}}})", "active")], kind="stat",
          width=4, description="1 while control has a job starting or running."),
    panel("Firing alerts", [('count(ALERTS{alertstate="firing", alertname=~"Rally.*"}) '
                             'or vector(0)', "firing")], kind="stat", width=4,
          description="rally alerts firing now; each has a runbook in docs/operations.md."),
    panel("Live workers / jobs submitted (control)",
          [(f"max(rally_control_workers{{{J}}})", "workers"),
           (f"max(rally_control_jobs_submitted_total{{{J}}})", "jobs submitted")],
          kind="stat", width=4),
    panel("Job learner steps / episodes",
          [(f"max(rally_control_job_learner_steps{{{J}}})", "learner steps"),
           (f"max(rally_control_job_episodes{{{J}}})", "episodes")], kind="stat", width=4),
    row("Learning"),
    panel("Exploitability (exact, lower is better)",
          [(f"rally_evaluator_exploitability{{{J}}}", "exploitability")],
          description="NashConv / 2 of the latest evaluated policy; 0 is unexploitable."),
    panel("Win rate against each fixed opponent",
          [(f'rally_evaluator_outcome_ratio{{{J},result="win"}}', "{{opponent}}")],
          unit="percentunit"),
    panel("Learner steps/s and episodes/s",
          [(rate("rally_learner_steps_total"), "learner steps/s"),
           (rate("rally_actor_episodes_total", ',component="actor"'), "actor episodes/s"),
           (rate("rally_evaluator_games_total"), "evaluation games/s")],
          description="Actors' self-play episodes and the evaluator's games are counted apart: "
                      "the evaluator plays no self-play episodes."),
    panel("Loss and mean return",
          [(f"rally_learner_loss{{{J}}}", "loss {{instance}}"),
           (f"rally_learner_mean_return{{{J}}}", "mean return {{instance}}")]),
    row("Processes"),
    panel("CPU (cores), by process",
          [(f"sum by (component, instance) (rate(process_cpu_seconds_total{{{J}}}[{RI}]))",
            "{{component}} {{instance}}")]),
    panel("Resident memory, by process",
          [(f"process_resident_memory_bytes{{{J}}}", "{{component}} {{instance}}")],
          unit="bytes"),
    panel("Open file descriptors (share of the limit)",
          [(f"process_open_fds{{{J}}} / process_max_fds{{{J}}}", "{{component}} {{instance}}")],
          unit="percentunit"),
    panel("OS threads, by process",
          [(f"process_threads{{{J}}}", "{{component}} {{instance}}")]),
    panel("Restarts in the last hour",
          [(f"changes(process_start_time_seconds{{{J}}}[1h])", "{{component}} {{instance}}")]),
    panel("gRPC calls/s by method and code",
          [(rate("grpc_server_handled_total", by="component, grpc_service, grpc_method, grpc_code"),
            "{{component}} {{grpc_method}} {{grpc_code}}")],
          description="Every rally gRPC server counts its calls by status code: a code other "
                      "than OK that grows is a failing method."),
    panel("gRPC unary latency p95, by method",
          [(quantile(0.95, "grpc_server_handling_seconds", by="component, grpc_method, le",
                     sel=',grpc_type="unary"'), "{{component}} {{grpc_method}}")], unit="s"),
    panel("Build", [(f"rally_build_info{{{J}}}",
                     "{{component}} {{binary}} {{version}} {{revision}}")], kind="table",
          width=24),
])

ACTORS = ("rally-actors", "rally: actors", "Self-play actors: throughput, inference, weights.", [
    row("Throughput"),
    panel("Episodes/s, by actor",
          [(rate("rally_actor_episodes_total", ',component="actor"', by="instance"),
            "{{instance}}")]),
    panel("Episodes/s, by opponent kind",
          [(rate("rally_actor_episodes_by_opponent_total", ',component="actor"',
                 by="opponent_kind"), "{{opponent_kind}}")],
          description="latest: every seat learning; snapshot: a past policy from the pool; "
                      "fixed: actors.opponents."),
    panel("Inference forward passes/s", [(rate("rally_actor_forward_passes_total",
                                               by="instance"), "{{instance}}")]),
    panel("Inference batch size",
          [(quantile(0.5, "rally_actor_inference_batch_size"), "p50"),
           (quantile(0.95, "rally_actor_inference_batch_size"), "p95")]),
    row("Trajectories to the replay"),
    panel("Trajectories acknowledged and refused /s",
          [(rate("rally_actor_trajectories_acked_total"), "acknowledged"),
           (rate("rally_actor_trajectories_rejected_total"), "refused")]),
    panel("Trajectories in flight", [(f"rally_actor_trajectories_in_flight{{{J}}}",
                                      "{{instance}}")]),
    row("Weights"),
    panel("Policy version: published and played",
          [(f"max(rally_learner_published_policy_version{{{J}}})", "published"),
           (f'rally_actor_policy_version{{{J},component="actor"}}', "{{instance}}")]),
    panel("Policy lag (seconds of publishing behind)",
          [(f'(scalar(max(rally_learner_published_policy_version{{{J}}})) - '
            f'rally_actor_policy_version{{{J},component="actor"}}) / '
            f'scalar(sum(deriv(rally_learner_published_policy_version{{{J}}}[2m])) > 0)',
            "{{instance}}")], unit="s",
          description="Versions behind the latest, divided by the versions published per "
                      "second (the quantity RallyActorPolicyBehind alerts on)."),
    panel("Publish-to-applied latency",
          [(quantile(0.5, "rally_actor_weights_publish_to_applied_seconds"), "p50"),
           (quantile(0.95, "rally_actor_weights_publish_to_applied_seconds"), "p95")],
          unit="s"),
    panel("Snapshot fetch failures and outcomes reported /s",
          [(rate("rally_actor_snapshot_fetch_failures_total"), "snapshot fetch failures"),
           (rate("rally_actor_outcomes_reported_total"), "outcomes reported")]),
    row("Processes"),
    panel("CPU (cores)", [(f'rate(process_cpu_seconds_total{{{J},component="actor"}}[{RI}])',
                           "{{instance}}")]),
    panel("Resident memory", [(f'process_resident_memory_bytes{{{J},component="actor"}}',
                               "{{instance}}")], unit="bytes"),
])

STARTED = (f'sum by (grpc_method) (grpc_server_started_total{{{J},component="replay",'
           'grpc_type="bidi_stream"})')
HANDLED = (f'sum by (grpc_method) (grpc_server_handled_total{{{J},component="replay",'
           'grpc_type="bidi_stream"})')

REPLAY = ("rally-replay", "rally: replay", "Replay tables, rate limiting, durability, curriculum.", [
    row("Tables"),
    panel("Items held, by table", [(f"rally_replay_table_size_items{{{J}}}",
                                    "{{instance}} {{table}}")]),
    panel("Bytes held, by table", [(f"rally_replay_table_size_bytes{{{J}}}",
                                    "{{instance}} {{table}}")], unit="bytes"),
    panel("Items/s: inserted, sampled, refused, duplicate, evicted",
          [(rate("rally_replay_items_inserted_total"), "inserted"),
           (rate("rally_replay_items_sampled_total"), "sampled"),
           (rate("rally_replay_items_rejected_total"), "refused"),
           (rate("rally_replay_items_not_durable_total"), "refused, not durable"),
           (rate("rally_replay_items_duplicate_total"), "duplicate"),
           (rate("rally_replay_items_evicted_stale_total"), "evicted stale")]),
    panel("Sample staleness (versions)",
          [(quantile(0.5, "rally_replay_sample_staleness_versions"), "p50"),
           (quantile(0.95, "rally_replay_sample_staleness_versions"), "p95")]),
    row("Rate limiter"),
    panel("Insert wait (blocked by a full table)",
          [(quantile(0.5, "rally_replay_insert_blocked_seconds", by="table, le"), "p50 {{table}}"),
           (quantile(0.99, "rally_replay_insert_blocked_seconds", by="table, le"),
            "p99 {{table}}")], unit="s"),
    panel("Sample wait (blocked by too few items)",
          [(quantile(0.5, "rally_replay_sample_blocked_seconds", by="table, le"), "p50 {{table}}"),
           (quantile(0.99, "rally_replay_sample_blocked_seconds", by="table, le"),
            "p99 {{table}}")], unit="s"),
    row("Durability"),
    panel("Write-ahead log bytes/s", [(f"rate(rally_replay_wal_bytes_written{{{J}}}[{RI}])",
                                       "{{instance}}")], unit="Bps",
          description="rally_replay_wal_bytes_written only grows while the process runs."),
    panel("Write-ahead log state",
          [(f"rally_replay_wal_failing{{{J}}}", "failing {{instance}}"),
           (f"rally_replay_wal_direct_io{{{J}}}", "direct I/O {{instance}}"),
           (f"rally_replay_recovery_problems{{{J}}}", "recovery problems {{instance}}"),
           (f"rally_replay_recovery_data_lost{{{J}}}", "recovery data lost {{instance}}")]),
    row("Curriculum"),
    panel("Curriculum picks and outcomes /s",
          [(rate("rally_curriculum_next_task_picks_total"), "picks"),
           (rate("rally_curriculum_outcomes_total", by="result"), "outcomes {{result}}")]),
    panel("Opponent pool size", [(f"rally_curriculum_pool_size{{{J}}}", "{{instance}}")]),
    panel("Probability of each opponent",
          [(f"rally_curriculum_opponent_probability{{{J}}}", "{{task}} {{opponent}}")],
          unit="percentunit"),
    panel("Learner's win rate against each opponent (curriculum window)",
          [(f"rally_curriculum_opponent_win_rate{{{J}}}", "{{task}} {{opponent}}")],
          unit="percentunit"),
    row("gRPC"),
    panel("Replay calls/s by method and code",
          [(rate("grpc_server_handled_total", ',component="replay"',
                 by="grpc_method, grpc_code"), "{{grpc_method}} {{grpc_code}}")]),
    panel("Open streams (started minus finished)",
          [(f"{STARTED} - ({HANDLED} or {STARTED} * 0)", "{{grpc_method}}")],
          description="A stream counts as handled once it ends; before any has ended, "
                      "every started stream is open."),
])

LEARNER = ("rally-learner", "rally: learner", "Optimiser steps, losses, policy lag, weights.", [
    row("Steps"),
    panel("Steps/s and episodes trained/s, by rank",
          [(rate("rally_learner_steps_total", by="instance"), "steps {{instance}}"),
           (rate("rally_learner_episodes_total", by="instance"), "episodes {{instance}}")]),
    panel("Step time and batch wait",
          [(quantile(0.5, "rally_learner_step_seconds"), "step p50"),
           (quantile(0.95, "rally_learner_step_seconds"), "step p95"),
           (quantile(0.5, "rally_learner_batch_wait_seconds"), "batch wait p50"),
           (quantile(0.95, "rally_learner_batch_wait_seconds"), "batch wait p95")], unit="s"),
    panel("Share of time waiting for batches",
          [(f"sum by (instance) (rate(rally_learner_batch_wait_seconds_sum{{{J}}}[{RI}])) / "
            f"(sum by (instance) (rate(rally_learner_batch_wait_seconds_sum{{{J}}}[{RI}])) + "
            f"sum by (instance) (rate(rally_learner_step_seconds_sum{{{J}}}[{RI}])))",
            "{{instance}}")], unit="percentunit",
          description="Near 1: the learner waits for data (actor-bound); near 0: the actors "
                      "wait for the learner (learner-bound)."),
    panel("Batches skipped and weights refused as non-finite /s",
          [(rate("rally_learner_batches_skipped_total", by="reason"), "skipped: {{reason}}"),
           (rate("rally_learner_weights_refused_total", by="destination"),
            "refused: {{destination}}")]),
    row("Losses"),
    panel("Loss and value loss", [(f"rally_learner_loss{{{J}}}", "loss {{instance}}"),
                                  (f"rally_learner_value_loss{{{J}}}", "value loss {{instance}}")]),
    panel("Policy entropy", [(f"rally_learner_policy_entropy_nats{{{J}}}", "{{instance}}")],
          unit="nats"),
    panel("Mean truncated importance weight", [(f"rally_learner_importance_weight{{{J}}}",
                                                "{{instance}}")]),
    panel("KL to the reference and to the magnet policy",
          [(f"rally_learner_kl_to_reference{{{J}}}", "reference {{instance}}"),
           (f"rally_learner_kl_to_magnet{{{J}}}", "magnet {{instance}}")], unit="nats"),
    panel("Mean return of the learning seats", [(f"rally_learner_mean_return{{{J}}}",
                                                 "{{instance}}")]),
    row("Policy versions"),
    panel("Policy lag of trained turns (versions)",
          [(quantile(0.5, "rally_learner_policy_lag_versions"), "p50"),
           (quantile(0.95, "rally_learner_policy_lag_versions"), "p95"),
           (quantile(0.99, "rally_learner_policy_lag_versions"), "p99")]),
    panel("Published version and publish rate",
          [(f"max(rally_learner_published_policy_version{{{J}}})", "version"),
           (f"sum(deriv(rally_learner_published_policy_version{{{J}}}[2m]))", "versions/s")]),
    panel("Snapshot pool and subscribers",
          [(f"rally_learner_weight_snapshot_pool_size{{{J}}}", "snapshot pool {{instance}}"),
           (f"rally_learner_weight_subscribers{{{J}}}", "subscribers {{instance}}")]),
    panel("Weight bytes sent/s", [(rate("rally_learner_weight_bytes_sent_total", by="instance"),
                                   "{{instance}}")], unit="Bps"),
])

EVALUATION = ("rally-evaluation", "rally: evaluation", "What the job is for: exploitability, "
              "win rates and Elo over time, by opponent.", [
    row("Exact evaluation"),
    panel("Exploitability (NashConv / 2)", [(f"rally_evaluator_exploitability{{{J}}}",
                                             "exploitability")],
          description="Exact, over every information state (evaluation.opponents has "
                      "best_response). 0 is unexploitable."),
    panel("Invalid answers (language-model policies)",
          [(f"rally_evaluator_invalid_answer_ratio{{{J}}}", "invalid answers")],
          unit="percentunit",
          description="Only in language-model jobs: the reach-weighted probability that an "
                      "answer does not parse (each counted as a forfeit)."),
    row("Fixed opponents"),
    panel("Win rate, by opponent", [(f'rally_evaluator_outcome_ratio{{{J},result="win"}}',
                                     "{{opponent}}")], unit="percentunit"),
    panel("Win / draw / loss shares, by opponent",
          [(f"rally_evaluator_outcome_ratio{{{J}}}", "{{opponent}} {{result}}")],
          unit="percentunit"),
    panel("Evaluation games/s, by opponent",
          [(rate("rally_evaluator_games_total", by="opponent"), "{{opponent}}")]),
    panel("Evaluated version and its lag behind the learner",
          [(f"rally_evaluator_policy_version{{{J}}}", "{{opponent}}"),
           (f"scalar(max(rally_learner_published_policy_version{{{J}}})) - "
            f"rally_evaluator_policy_version{{{J}}}", "behind: {{opponent}}")]),
    row("League"),
    panel("Elo, by player", [(f"rally_evaluator_elo{{{J}}}", "{{player}}")],
          description="Ratings in the job's league (evaluation.league_games > 0): latest is "
                      "the current policy, fixed opponents keep their names; random = 0."),
])

DASHBOARDS = [OVERVIEW, ACTORS, REPLAY, LEARNER, EVALUATION]


def templating():
    return {"list": [
        {"name": "datasource", "label": "Data source", "type": "datasource",
         "query": "prometheus", "current": {}, "hide": 0, "refresh": 1, "options": [],
         "regex": ""},
        {"name": "job", "label": "Prometheus job", "type": "query",
         "datasource": {"type": "prometheus", "uid": "${datasource}"},
         "definition": 'label_values(up{job=~"rally.*"}, job)',
         "query": {"query": 'label_values(up{job=~"rally.*"}, job)', "refId": "job"},
         "includeAll": True, "multi": True, "allValue": "rally.*",
         "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
         "refresh": 2, "sort": 1, "hide": 0, "options": [], "regex": ""}]}


def grafana_panel(p, pid, x, y, height):
    ds = {"type": "prometheus", "uid": "${datasource}"}
    out = {"id": pid, "type": p["type"], "title": p["title"], "datasource": ds,
           "gridPos": {"h": height, "w": p["width"], "x": x, "y": y},
           "fieldConfig": {"defaults": {"unit": p["unit"]}, "overrides": []},
           "targets": [{"refId": chr(ord("A") + i), "datasource": ds, "expr": expr,
                        "legendFormat": legend, "range": p["type"] != "table",
                        "instant": p["type"] == "table"}
                       for i, (expr, legend) in enumerate(p["targets"])]}
    if p["description"]:
        out["description"] = p["description"]
    if p["type"] == "timeseries":
        out["options"] = {"legend": {"displayMode": "list", "placement": "bottom"},
                          "tooltip": {"mode": "multi"}}
    if p["type"] == "stat":
        out["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"}
    return out


def dashboard(uid, title, description, items):
    panels, x, y, pid = [], 0, 0, 1
    for item in items:
        if "row" in item:
            if x:
                x, y = 0, y + 8
            panels.append({"id": pid, "type": "row", "title": item["row"], "collapsed": False,
                           "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
            pid, y = pid + 1, y + 1
            continue
        height = 4 if item["type"] == "stat" else 8
        if x + item["width"] > 24:
            x, y = 0, y + 8
        panels.append(grafana_panel(item, pid, x, y, height))
        pid, x = pid + 1, x + item["width"]
    links = [{"title": t, "type": "link", "url": f"/d/{u}", "keepTime": True,
              "includeVars": True} for u, t, _, _ in DASHBOARDS if u != uid]
    return {"title": title, "uid": uid, "description": description,
            "tags": ["rally"], "schemaVersion": 37, "version": 1, "editable": True,
            "graphTooltip": 1, "time": {"from": "now-1h", "to": "now"}, "refresh": "30s",
            "timezone": "", "links": links, "annotations": {"list": []},
            "templating": templating(), "panels": panels}


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "dashboards")
    os.makedirs(out_dir, exist_ok=True)
    for uid, title, description, items in DASHBOARDS:
        path = os.path.join(out_dir, uid.replace("rally-", "") + ".json")
        with open(path, "w") as f:
            json.dump(dashboard(uid, title, description, items), f, indent=2)
            f.write("\n")
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
