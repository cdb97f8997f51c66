"""Shared state between engine tests and the test stages (which are re-imported per load)."""
import asyncio

entered = asyncio.Event()
gate = asyncio.Event()
closed: list = []
after_calls: list = []


def reset() -> None:
    global entered, gate
    entered = asyncio.Event()
    gate = asyncio.Event()
    closed.clear()
    after_calls.clear()
