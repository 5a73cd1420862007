"""Report: the tables a run prints."""

from __future__ import annotations


from dashboard.settings import TARGET_FIRST_VIEW, TARGET_LIST, TARGET_NEW_RUN


def fmt(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def met(value, target) -> str:
    if target is None:
        return ""
    if value is None:
        return "MISSED (no figure)"
    return "met" if value <= target else "MISSED"


def print_table(title: str, rows: list[tuple]) -> None:
    print(f"\n{title}")
    print(f"  {'what':58s} {'seconds':>10s} {'target':>8s}  met?")
    for what, seconds, target, *extra in rows:
        shown = extra[0] if extra else fmt(seconds, 2)
        print(f"  {what:58s} {shown:>10s} {('<= ' + fmt(target, 0)) if target else '':>8s}  "
              f"{extra[1] if len(extra) > 1 else met(seconds, target)}")


def print_report(report: dict) -> None:
    print(f"\nround trip on the mount: {report['round_trip']['median_seconds'] * 1000:.1f} ms (median of "
          f"{report['round_trip']['stat_calls']} stat calls; relay adds {2 * report['one_way_ms']:g} ms); load "
          f"average {report['load_average_start']} at start, {report.get('load_average_end')} at end")
    plain = report.get("plain")
    if plain and not plain.get("skipped"):
        art = plain.get("artifacts", {})
        rows = [("server answering (/health)", plain.get("answering_seconds"), None),
                (f"first full view ({plain['runs']} runs)", plain.get("first_full_view_seconds"), None,
                 fmt(plain.get("first_full_view_seconds"), 2) if "first_full_view_seconds" in plain
                 else f"timeout>{report['plain_timeout']:.0f}", ""),
                ("list, warm (one more runs/search)", plain.get("list_warm_seconds"), None),
                ("refresh after a new run (one search 1.5 s after)", plain.get("new_run_seconds"), None)]
        if art:
            rows.append((f"artifacts of {art['runs']} run(s): listed / identical / expected",
                         art["seconds"], None,
                         f"{art['files_listed']}/{art['files_identical']}/{art['files_expected']}", ""))
        print_table("plain mlflow server on the sshfs mount", rows)
    for key, title in (("ui_cold", "gravtrain ui, cold mirror"), ("ui_warm", "gravtrain ui, warm mirror (restart)"),
                       ("ui_large", "gravtrain ui, large store, cold mirror"),
                       ("ui_default_cache", "gravtrain ui, sshfs default cache (dcache 20 s), warm mirror")):
        ui = report.get(key)
        if not ui or ui.get("skipped"):
            continue
        if "error" in ui:
            print(f"\n{title}: {ui['error']}")
            continue
        rows = [("server answering (/health)", ui.get("server_answering_seconds"), None),
                ("mirror (its 'mirrored ... in X s' line)", ui.get("mirror_seconds"), None),
                ("browse line logged", ui.get("browse_line_seconds"), None),
                (f"first full view ({ui['runs']} runs)" if ui["runs"] <= 100 else
                 "first view (first page: the 100 newest runs)", ui["first_full_view_seconds"], TARGET_FIRST_VIEW),
                *([(f"every run listed (all {ui['pages']} pages)", ui["all_runs_seconds"], None)]
                  if "all_runs_seconds" in ui else []),
                ("list once mirrored, first page (median of 5)", ui.get("list_seconds_median"), TARGET_LIST)]
        if "list_all_pages_seconds_median" in ui:
            rows.append((f"list once mirrored, all {ui['pages']} pages (median of 5)",
                         ui["list_all_pages_seconds_median"], None))
        if "new_run" in ui:
            rows.append(("refresh after a new run (meta.yaml -> listed)", ui["new_run"].get("new_run_seconds"),
                         None if key == "ui_default_cache" else TARGET_NEW_RUN))
        if "idle_refresh" in ui:
            rows.append(("one background refresh, nothing new (median of 3)", ui["idle_refresh"]["seconds_median"],
                         None))
        if "artifacts" in ui:
            art = ui["artifacts"]
            rows.append(("artifacts: listed / identical / expected", art["seconds"], None,
                         f"{art['files_listed']}/{art['files_identical']}/{art['files_expected']}",
                         "met" if art["files_identical"] == art["files_expected"] else "MISSED"))
        if "experiment_kind" in ui:
            rows.append(("experiment kind", None, None, str(ui["experiment_kind"]),
                         "met" if ui["experiment_kind_ok"] else "MISSED"))
        rows.append(("SIGTERM: exit code / server left answering", None, None,
                     f"{ui['stop']['exit_code']}/{ui['stop']['server_left_answering']}",
                     "met" if ui["stop"]["exit_code"] == 143 and not ui["stop"]["server_left_answering"]
                     else "MISSED"))
        print_table(title, rows)
    if report.get("workers"):
        print_table("StoreMirror.refresh() cold on the first mount, by workers",
                    [(f"workers={row['workers']} ({row['runs']} runs, {row['files_read']} files, sshfs "
                      f"{row['sshfs_threads_max']} threads)", row["seconds"], None) for row in report["workers"]])
    if report.get("server_start"):
        print_table("mlflow server start-up on the local mirror (until /health answers)",
                    [(f"workers {row['workers']}", row["answering_seconds"], None) for row in report["server_start"]])
