"""The machine a run happened on, and the Markdown tables of the results."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import psutil

from worker.engines.browser import SYSTEM_HEADLESS_SHELL


def _command(*args: str) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() or "unknown"


def machine() -> dict[str, Any]:
    """What the figures depend on: CPU, memory, versions and how busy the machine was."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "chromium": "headless shell "
        + _command(SYSTEM_HEADLESS_SHELL, "--version").replace("\n", " "),
        "redis": _command("redis-server", "--version").split(" sha=")[0],
        "commit": _command("git", "rev-parse", "--short", "HEAD"),
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def _goal_cell(goal: dict[str, Any]) -> str:
    return f"{goal['value']} (goal {goal['target']}: {'met' if goal['met'] else 'NOT met'})"


def markdown(name: str, result: dict[str, Any]) -> str:
    """One benchmark's result as a Markdown section."""
    lines = [f"### {name}", ""]
    if name == "throughput":
        lines += [
            f"{result['pages']} pages of the Python 3.11 docs on {result['hosts']} loopback sites,"
            f" {result['size']} PNG, every contender on `{result['binary']}`; best of"
            f" {result['rounds']} interleaved rounds. CPU counts whole process trees.",
            "",
            "| contender | shots/s | CPU s/shot | x shot-scraper (steady) | x raw Playwright"
            " (best) | CPU x raw | rounds (shots/s) | CPU ms/shot by process |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in result["rows"]:
            split = ", ".join(f"{kind} {ms:g}" for kind, ms in
                              row.get("cpu_ms_per_shot_by_process", {}).items())
            lines.append(
                f"| {row['name']} | {row['shots_per_second']} | {row['cpu_seconds_per_shot']} |"
                f" {row['ratio_vs_shot_scraper_steady']} | {row['ratio_vs_raw_playwright']} |"
                f" {row['cpu_ratio_vs_raw_playwright']} | {row['all_rounds_shots_per_second']} |"
                f" {split} |"
            )
        lines += [
            "",
            f"shot-scraper steady state (browser start {result['shot_scraper_startup_seconds']} s"
            f" taken out): {result['shot_scraper_steady_shots_per_second']} shots/s;"
            f" raw Playwright's best: {result['raw_playwright_best']}.",
            "",
        ]
        lines += [f"Goal: {goal['name']}: {_goal_cell(goal)}." for goal in result["goals"]]
    elif name == "latency":
        lines += [
            f"{result['captures']} single captures one after another on an idle warm worker"
            f" ({result['pause_s']} s apart), a docs page 1280x800 PNG, submit → succeeded:"
            f" p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, max {result['max_ms']} ms"
            f" (engine's own share, started → finished: p50 {result['engine_p50_ms']} ms).",
            "",
            f"Goal: {result['goal']['name']}: {_goal_cell(result['goal'])}.",
        ]
    elif name == "deadhosts":
        lines += [
            f"{result['pages']} pages, each pulling from {result['dead_hosts_per_page']} dead"
            " third-party hosts (unresolvable names, refused ports, black-holed TCP),"
            " one at a time; seconds per page:",
            "",
            "| contender | median s/page | max s/page | captured |",
            "|---|---|---|---|",
            *(f"| {row['name']} | {row['median_seconds']} | {row['max_seconds']} |"
              f" {row['ok']}/{row['pages']} |" for row in result["rows"]),
            "",
            f"Goal: {result['goal']['name']}: {_goal_cell(result['goal'])}.",
        ]
    elif name == "overhead":
        shot, bare, lat = result["shotline"], result["bare_celery_noop"], result["submit_latency"]
        lines += [
            "| | jobs | jobs/s | lost | CPU ms/job | Redis commands/job: sent by clients + run in scripts |",
            "|---|---|---|---|---|---|",
            f"| Shotline end to end (SnapAPI stand-in, {shot.get('worker_pool', 'prefork')})"
            f" | {shot['jobs']} | {shot['jobs_per_second']} |"
            f" {shot['lost_or_failed']} | {_cpu(shot['cpu_ms_per_job'])} | {_redis(shot)} |",
            f"| bare Celery no-op (prefork x{bare['worker_concurrency']}) | {bare['jobs']} |"
            f" {bare['jobs_per_second']} | - | {_cpu(bare['cpu_ms_per_job'])} | {_redis(bare)} |",
            "",
            f"Shotline / bare Celery: {result['ratio_shotline_vs_bare_celery']}.",
            "",
            *(
                f"Submit latency at {one['rate_per_second']:g} req/s open loop for"
                f" {one['seconds']:g} s, {label}: p50 {one['p50_ms']} ms, p99 {one['p99_ms']} ms,"
                f" max {one['max_ms']} ms ({one['jobs_succeeded']}/{one['sent']} of those jobs"
                " succeeded)."
                for label, one in (("workers paused", result.get("submit_latency_workers_paused")),
                                   ("workers running", lat))
                if one is not None
            ),
            "",
        ]
        lines += [f"Goal: {goal['name']}: {_goal_cell(goal)}." for goal in result["goals"]]
    elif name == "memory":
        api, worker = result["api_streaming"], result["worker"]
        lines += [
            "| | measured | goal |",
            "|---|---|---|",
            f"| API RSS, {api['streams']} x {api['mb_each']} MB streamed at once ({api['via']}) |"
            f" idle {api['idle_rss_mb']} MB, peak {api['peak_rss_mb']} MB | ≤ 150 MB:"
            f" {'met' if api['goal']['met'] else 'NOT met'} |",
            f"| worker RSS over {worker['captures']} captures (Celery + Chromium) |"
            f" {worker['samples'][0]['total_mb']} → {worker['samples'][-1]['total_mb']} MB"
            f" ({worker['growth_percent_total']:+} %; Python {worker['growth_percent_python']:+} %)"
            f" | ≤ 10 %: {'met' if worker['goal']['met'] else 'NOT met'} |",
            f"| processes of the worker left after its shutdown |"
            f" {len(worker.get('leftover_processes_after_shutdown', []))}"
            f" {worker.get('leftover_processes_after_shutdown', [])} | none |",
        ]
    elif name == "memory-hostile":
        hostile = result["worker_hostile"]
        lines += [
            f"A worker (`shotline worker`, threads, one capture at a time) captures"
            f" {hostile['captures']} hostile test pages one after another ({hostile['failed']}"
            f" failed); PSS of its whole tree (Celery, Playwright's driver, Chromium).",
            "",
            "| after capture | PSS MB | Python | driver | Chromium | processes |",
            "|---|---|---|---|---|---|",
            *(f"| {sample['captures']} | {sample['pss_mb']} | {sample['python_mb']} |"
              f" {sample['node_mb']} | {sample['chromium_mb']} | {sample['processes']} |"
              for sample in hostile["samples"]),
            "",
            f"First {hostile['first_pss_mb']} MB, last {hostile['last_pss_mb']} MB (growth"
            f" {hostile['growth_mb']:+} MB), peak {hostile['peak_pss_mb']} MB; load average"
            f" {hostile['load_average']}.",
        ]
    elif name == "monitors":
        lines += [
            f"{result['monitors']} monitors due within {result['spread_seconds']:g} s,"
            f" {result['schedulers']} scheduler processes racing, an instant engine.",
            "",
            "| scheduler CPU s / 10 000 fires | last slot late by | worst lateness | p50 |"
            " runs | monitors with exactly one run | more | none |",
            "|---|---|---|---|---|---|---|---|",
            f"| {result['scheduler_cpu_seconds_per_10000_fires']} |"
            f" {result['last_slot_lateness_ms']} ms | {result['max_lateness_ms']} ms |"
            f" {result['p50_lateness_ms']} ms | {result['runs']} |"
            f" {result['monitors_with_exactly_one_run']} | {result['monitors_with_more']} |"
            f" {result['monitors_with_none']} |",
            "",
            f"Run outcomes: {result['run_statuses']}. Goal: {result['goal']['name']}:"
            f" {'met' if result['goal']['met'] else 'NOT met'}.",
        ]
    return "\n".join(lines) + "\n"


def _redis(row: dict[str, Any]) -> str:
    counted = row.get("redis")
    if not counted:
        return "-"
    return (f"{counted['client_commands_per_job']} + {counted['commands_in_scripts_per_job']}"
            f" (over {counted['jobs']} jobs)")


def _cpu(parts: dict[str, float]) -> str:
    return ", ".join(f"{name} {value}" for name, value in parts.items())


def machine_markdown(info: dict[str, Any]) -> str:
    """One line describing the machine."""
    return (
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gb']} GB; Linux"
        f" {info['kernel']}; Python {info['python']}; {info['chromium']}; {info['redis']};"
        f" load average at start {info['load_average']}; commit {info['commit']}; {info['date']}.\n"
    )
