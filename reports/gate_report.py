"""The gate's verdict as text for a CI log: regressions and missing data first, every check after,
and a last line that says pass or fail with the metrics named."""

from __future__ import annotations

from collections.abc import Callable

from reports.gate import ABSOLUTE_METRICS, Check, GateReport
from reports.provenance import allowed_note
from reports.text import MISSING, md_table, num, pct
from reports.validity import allowed_invalid_note, allowed_server_view_note


def _baseline(check: Check) -> str:
    if not check.baseline:
        return MISSING
    sd = check.baseline_sd
    spread = f" ± {num(sd)}" if sd is not None else ""
    return f"{num(check.baseline_mean)}{spread} (n={len(check.baseline)})"


def _candidate(check: Check) -> str:
    if not check.candidate:
        return MISSING
    return f"{num(check.candidate_mean)} (n={len(check.candidate)})"


def _interval(check: Check) -> str:
    """The 95% interval of how much worse the candidate is, in the table's units (relative or points)."""
    if check.interval is None:
        return MISSING
    low, high = check.interval
    if check.metric in ABSOLUTE_METRICS:
        return f"[{low * 100:+.2f}, {high * 100:+.2f}] pt"
    base = check.baseline_mean
    if not base:
        return f"[{num(low)}, {num(high)}]"
    sign = -1 if check.higher_is_better else 1  # shown as a change of the metric, like the change column
    ends = sorted((sign * low / abs(base), sign * high / abs(base)))
    return f"[{pct(ends[0], signed=True)}, {pct(ends[1], signed=True)}]"


def _change(check: Check) -> str:
    if check.metric in ABSOLUTE_METRICS:
        b, c = check.baseline_mean, check.candidate_mean
        return MISSING if b is None or c is None else f"{(c - b) * 100:+.2f} pt"
    return pct(check.change, signed=True)


def _allowed(check: Check) -> str:
    """The allowed change, signed in the bad direction."""
    if check.allowed is None:
        return MISSING
    sign = "-" if check.higher_is_better else "+"
    if check.metric in ABSOLUTE_METRICS:
        return f"{sign}{check.allowed * 100:.2f} pt ({check.band_from})"
    base = check.baseline_mean
    if not base:
        return f"{sign}{num(check.allowed)} ({check.band_from})"
    return f"{sign}{check.allowed / abs(base) * 100:.1f}% ({check.band_from})"


def _rows(checks: list[Check]) -> list[list[str]]:
    return [
        [
            c.config,
            c.level,
            c.metric,
            "higher" if c.higher_is_better else "lower",
            _baseline(c),
            _candidate(c),
            _change(c),
            _interval(c),
            _allowed(c),
            c.verdict,
        ]
        for c in checks
    ]


_HEADERS = [
    "config",
    "load",
    "metric",
    "better",
    "baseline mean ± sd",
    "candidate mean",
    "change",
    "95% interval of change",
    "allowed",
    "verdict",
]
_RIGHT = [False, False, False, False, True, True, True, True, True, False]


def _missing_line(check: Check) -> str:
    if check.verdict == "no baseline":
        return f"- {check.config} {check.level} {check.metric}: not in the baseline, not gated"
    gaps = []
    if check.candidate_missing or not check.candidate:
        gaps.append(
            f"candidate has no value in {check.candidate_missing or 'any'} run(s)"
            if check.candidate_missing
            else "candidate lacks this level"
        )
    return f"- {check.config} {check.level} {check.metric}: {'; '.join(gaps) or 'no value'}"


SUMMARY_NAMES = 10  # regressions named on the last line; the table above lists every one


def summary_line(report: GateReport) -> str:
    mixed = (
        f" [mixed runs allowed: {', '.join(m.field for m in report.mixed)} differ]" if report.mixed else ""
    )
    return _summary(report) + mixed


def _summary(report: GateReport) -> str:
    judged = sum(1 for c in report.checks if c.verdict in ("ok", "better", "unclear"))
    if report.passed and not judged:
        return "gate: PASSED: nothing to judge, no candidate level has a baseline (a new configuration?)"
    if report.passed:
        extra = f", {len(report.missing)} without data (listed above)" if report.missing else ""
        return f"gate: PASSED: {judged} checks within their bands{extra}"
    return "gate: FAILED: " + "; ".join(_failure_parts(report))


def _named(checks: list[Check], what: str, describe: Callable[[Check], str]) -> str:
    shown = checks[:SUMMARY_NAMES]
    more = len(checks) - len(shown)
    tail = f"; and {more} more (listed above)" if more else ""
    return f"{len(checks)} {what}: " + "; ".join(describe(c) for c in shown) + tail


def _failure_parts(report: GateReport) -> list[str]:
    """What failed, by kind: regressions, what the candidate lacks, unclear changes under --strict."""
    failures = report.failures
    kinds = [
        (
            "REGRESSION",
            "regression(s)",
            lambda c: f"{_level_metric(c)} {_change(c)} (allowed {_allowed(c).split(' (')[0]})",
        ),
        ("missing", "check(s) missing from the candidate (--allow-missing to pass them)", _level_metric),
        ("unclear", "unclear change(s) (--strict)", lambda c: f"{_level_metric(c)} {_change(c)}"),
    ]
    parts = []
    for verdict, what, describe in kinds:
        checks = [c for c in failures if c.verdict == verdict]
        if checks:
            parts.append(_named(checks, what, describe))
    return parts


def _level_metric(check: Check) -> str:
    return f"{check.config} {check.level} {check.metric}"


def render_gate_markdown(report: GateReport) -> str:
    tolerances = ", ".join(
        f"{m} {'off' if t is None else (f'{t:g} pt' if m in ABSOLUTE_METRICS else f'{t:g}%')}"
        for m, t in report.tolerances.items()
    )
    parts = [
        "# Regression gate",
        f"baseline: {report.baseline_files} file(s); candidate: {report.candidate_files} file(s); "
        f"k = {report.k:g}\n\ntolerances: {tolerances}\n\n"
        "allowed change = max(tolerance x |baseline mean|, k x s x sqrt(1/n_b + 1/n_c)), s = a single run's "
        "standard deviation from the baseline alone: the larger of its repeats' at that level and the "
        "coefficient of variation pooled over the baseline's levels of the configuration x baseline mean. "
        "'(noise)' marks checks where run-to-run noise, not the tolerance, set the band. With two or more "
        "runs on both sides a change beyond the band is a REGRESSION only when the 95% Welch interval of the "
        "difference excludes no change; otherwise it is 'unclear', which "
        + ("fails the gate (--strict)." if report.strict else "does not fail the gate (no --strict).")
        + " A level or metric of the baseline that the candidate lacks "
        + ("is listed and passes (--allow-missing)." if report.allow_missing else "fails the gate."),
    ]
    if report.invalid:
        parts.append(f"> **{allowed_invalid_note(report.invalid)}**")
    if report.server_view:
        parts.append(f"> **{allowed_server_view_note(report.server_view)}**")
    if report.mixed:
        parts.append(f"> **{allowed_note(report.mixed)}**")
    if report.modelled_time:
        parts.append(
            "> Simulated runs were converted to modelled time before gating (durations / time scale, "
            "rates x time scale): configurations tagged [sim ..., modelled time]."
        )
    if report.regressions:
        parts += [
            f"## Regressions ({len(report.regressions)})",
            md_table(_HEADERS, _rows(report.regressions), _RIGHT),
        ]
    unclear = [c for c in report.checks if c.verdict == "unclear"]
    if unclear:
        parts += [
            f"## Unclear: beyond the band, but the 95% interval includes no change ({len(unclear)}; "
            + ("failing: --strict)" if report.strict else "not failing)"),
            md_table(_HEADERS, _rows(unclear), _RIGHT),
        ]
    if report.missing:
        parts += [
            f"## Missing data ({len(report.missing)}"
            + (
                ""
                if report.allow_missing or not any(c.verdict == "missing" for c in report.missing)
                else "; what the candidate lacks fails the gate"
            )
            + ")",
            "\n".join(_missing_line(c) for c in report.missing),
        ]
    single = [c for c in report.checks if len(c.baseline) == 1 and len(c.candidate) == 1]
    if single:
        parts.append(
            f"> {len(single)} check(s) had a single run on both sides: no noise estimate, the tolerance "
            "alone sets the band. Give repeat runs to fold noise in."
        )
    parts += ["## All checks", md_table(_HEADERS, _rows(report.checks), _RIGHT), summary_line(report)]
    return "\n\n".join(parts) + "\n"
