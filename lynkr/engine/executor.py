"""Run a Plan over an Exchange.

Rules (each tested in tests/test_executor.py):
- a step whose `if:` is false is skipped (recorded);
- once a stage sets `x.response`, no further request-phase stage runs;
- a failing step with `on_error` hands the request to that handler;
- without `on_error`, an optimisation stage fails open (request unchanged, recorded) and a
  critical stage (provider_call) becomes an error response in the client's protocol;
- after a stage that does not declare `edits = "copy-on-write"`, the JSON remembered of the
  request's parts is dropped (lynkr.body), so an in-place edit is what goes upstream;
- `after` hooks of the steps that ran are run once the response is finished — for streams,
  after the last byte was sent, so they never delay the stream.
"""
from __future__ import annotations

import logging
import time

from lynkr.body import CHECK_EDITS, EditedInPlace
from lynkr.errors import ProxyError
from lynkr.exchange import Exchange, Response, StageEvent
from lynkr.redact import redact
from lynkr.engine.plan import Plan, Step

__all__ = ["run_request", "run_after"]

log = logging.getLogger("lynkr.engine")


def _condition_vars(x: Exchange) -> dict:
    names = dict(x.vars)
    names.setdefault("client", x.client)
    names.setdefault("model", x.request.get("model"))
    names.setdefault("stream", x.stream)
    names["vars"] = x.vars
    return names


async def run_request(plan: Plan, x: Exchange) -> Exchange:
    for step in plan.main:
        if x.response is not None:
            break
        await _run_step(plan, step, x, depth=0)
    if x.response is None and not x.dry_run:
        x.response = Response(status=500, error=ProxyError(
            500, "the pipeline finished without a response: add a provider_call stage (or a cache that answers)",
            type="api_error", retryable=False))
    return x


async def _run_step(plan: Plan, step: Step, x: Exchange, depth: int) -> None:
    if step.condition is not None:
        try:
            go = bool(step.condition(**_condition_vars(x)))
        except Exception as e:  # an `if:` over vars that are not there is false, not fatal
            go = False
            x.events.append(StageEvent(step.id, step.uses, outcome="skipped", detail={"if_error": str(e)}))
            return
        if not go:
            x.events.append(StageEvent(step.id, step.uses, outcome="skipped", detail={"if": step.condition_text}))
            return
    ev = x.start_stage(step.id, step.uses)
    had_response = x.response is not None
    t0 = time.perf_counter()
    try:
        await step.stage.run(x)
        ev.outcome = "responded" if (x.response is not None and not had_response) else "ok"
    except Exception as e:  # stages are plugins: any exception must be contained
        ev.duration_us = int((time.perf_counter() - t0) * 1e6)
        ev.outcome = "error"
        ev.detail.setdefault("error", _describe(e))
        x.ran.append((step, ev))
        x.stage_event = None
        x.body.forget()         # it may have changed a part before it failed
        await _on_failure(plan, step, x, e, depth)
        return
    ev.duration_us = int((time.perf_counter() - t0) * 1e6)
    x.ran.append((step, ev))
    x.stage_event = None
    try:
        _edited(step, x)
    except EditedInPlace as e:
        log.error("%s", e)
        ev.outcome = "error"
        ev.detail["error"] = str(e)
        x.response = Response(status=500, error=ProxyError(500, str(e), type="api_error", retryable=False))


def _edited(step: Step, x: Exchange) -> None:
    """After a stage: the request's remembered JSON is dropped unless the stage declares it edits
    copy-on-write (then, under LYNKR_CHECK_EDITS, checked: a false declaration is an error)."""
    if not step.keeps_parts:
        x.body.forget()
    elif CHECK_EDITS:
        x.body.verify(step.id)


async def _on_failure(plan: Plan, step: Step, x: Exchange, exc: Exception, depth: int) -> None:
    x.error = exc
    if step.on_error and depth < 16:
        x.vars["error"] = _describe(exc)
        x.vars["failed_stage"] = step.id
        x.response = None
        await _run_step(plan, plan.steps[step.on_error], x, depth + 1)
        return
    if step.critical:
        err = exc if isinstance(exc, ProxyError) else ProxyError(500, f"stage '{step.id}' failed: {type(exc).__name__}", retryable=False)
        if not isinstance(exc, ProxyError):
            log.exception("stage %s failed", step.id, exc_info=exc)
        x.response = Response(status=err.status, error=err)
        return
    x.ran[-1][1].outcome = "failed_open"
    log.warning("stage %s failed open: %s", step.id, _describe(exc))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ProxyError):
        return f"{exc.status} {exc.message}"
    # Exception text (a URL with ?key=, an echoed header) goes to telemetry and explain: mask keys.
    return redact(f"{type(exc).__name__}: {exc}")


async def run_after(x: Exchange) -> None:
    """Each `after` hook sees its stage's run event as `x.stage_event` (what it stored goes in the
    same detail); the hook's own outcome and time are an event of phase `after`."""
    for step, run_ev in x.ran:
        if not step.has_after:
            continue
        ev = StageEvent(step.id, step.uses, phase="after")
        if x.trace is not None:
            x.trace.stage(ev)
        x.stage_event = run_ev
        t0 = time.perf_counter()
        try:
            await step.stage.after(x)
        except Exception as e:
            ev.outcome = "error"
            ev.detail["error"] = _describe(e)
            log.warning("after hook of %s failed: %s", step.id, _describe(e))
        try:
            _edited(step, x)        # the telemetry row counts tokens by the parts' JSON
        except EditedInPlace as e:
            log.error("%s", e)
            ev.outcome = "error"
            ev.detail["error"] = str(e)
        ev.duration_us = int((time.perf_counter() - t0) * 1e6)
        x.stage_event = None
        x.events.append(ev)
