"""Compile a LoadedConfig's stage graph into an execution plan.

Stages run one at a time, in a topological order of `needs` that keeps file order among
independent stages. They share one mutable request, so running independent stages
concurrently would race; the DAG fixes what must come before what, and the file order
breaks ties so the order is stable and readable (`lynkr explain` prints it).

A stage named by another stage's `on_error` is a handler: it is left out of the main order
and runs only when its source fails.
"""
from __future__ import annotations

import graphlib
import heapq
from dataclasses import dataclass
from typing import Callable

import jinja2

from lynkr.config import LoadedConfig
from lynkr.config.render import jinja_env
from lynkr.stage import EDITS, Stage

__all__ = ["Step", "Plan", "compile_plan"]

_JINJA = jinja_env()       # sandboxed, like the load-time templates


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    uses: str
    stage: Stage
    condition: Callable | None
    condition_text: str | None
    on_error: str | None
    critical: bool
    has_after: bool
    # Declares it changes the request copy-on-write (Stage.edits): the parts' JSON stays valid.
    keeps_parts: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    main: tuple[Step, ...]
    handlers: dict  # id -> Step
    steps: dict     # id -> Step, all of them
    off: dict       # id -> (uses, why): stages whose `enabled:` is false, left out

    def describe(self) -> list[str]:
        out = []
        for n, s in enumerate(self.main, 1):
            extra = []
            if s.condition_text:
                extra.append(f"if: {s.condition_text}")
            if s.on_error:
                extra.append(f"on_error → {s.on_error}")
            out.append(f"{n}. {s.id} ({s.uses})" + (f"  [{'; '.join(extra)}]" if extra else ""))
        for s in self.handlers.values():
            out.append(f"   handler {s.id} ({s.uses})" + (f"  [on_error → {s.on_error}]" if s.on_error else ""))
        for sid, (uses, why) in self.off.items():
            out.append(f"   off {sid} ({uses})  [{why}]")
        return out


def compile_condition(expr: str) -> Callable:
    return _JINJA.compile_expression(expr)


def _file_order_respecting_needs(entries: dict, needs: list[tuple[str, str]]) -> list[str]:
    """The stages in file order, except that a stage waits for what it needs: of the stages
    ready at each step, the one written first goes next (the loader has ruled out cycles)."""
    graph = graphlib.TopologicalSorter({sid: () for sid in entries})
    for before, after in needs:
        graph.add(after, before)
    graph.prepare()
    ready = [(entries[sid][0], sid) for sid in graph.get_ready()]
    heapq.heapify(ready)
    order = []
    while ready:
        _i, sid = heapq.heappop(ready)
        order.append(sid)
        graph.done(sid)
        for nxt in graph.get_ready():
            heapq.heappush(ready, (entries[nxt][0], nxt))
    return order


def compile_plan(cfg: LoadedConfig, stages: dict[str, Stage]) -> Plan:
    """Switched-off stages are left out: what needs one still runs, and a source whose handler is
    off fails as if it had none."""
    entries = {st["id"]: (i, st) for i, st in enumerate(cfg.data["stages"]) if st["id"] not in cfg.off}
    handlers = {st["on_error"] for _i, st in entries.values() if st.get("on_error") in entries}
    order = _file_order_respecting_needs(entries, [(u, v) for u, v, kind in cfg.edges
                                                   if kind == "needs" and u in entries and v in entries])

    steps = {}
    for sid, (i, st) in entries.items():
        cond_text = st.get("if")
        cond = None
        if cond_text:
            try:
                cond = compile_condition(cond_text)
            except jinja2.TemplateSyntaxError as e:
                raise cfg.error(f"invalid if: expression: {e.message}", ("stages", i, "if")) from None
        stage = stages[sid]
        edits = getattr(type(stage), "edits", "in-place")
        if edits not in EDITS:
            raise cfg.error(f"stage '{sid}' ({st['uses']}): its class declares edits = {edits!r}; "
                            f"expected one of {', '.join(EDITS)}", ("stages", i, "uses"))
        steps[sid] = Step(
            id=sid, uses=st["uses"], stage=stage, condition=cond, condition_text=cond_text,
            on_error=st.get("on_error") if st.get("on_error") in entries else None, critical=bool(type(stage).critical),
            has_after=type(stage).after is not None and callable(getattr(stage, "after", None)),
            keeps_parts=edits == "copy-on-write",
        )
    main = tuple(steps[s] for s in order if s not in handlers)
    off = {st["id"]: (st["uses"], cfg.off[st["id"]]) for st in cfg.data["stages"] if st["id"] in cfg.off}
    return Plan(main=main, handlers={h: steps[h] for h in handlers}, steps=steps, off=off)
