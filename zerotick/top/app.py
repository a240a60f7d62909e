"""The textual application: scrapes in a worker thread every interval and shows the latest view.

A scrape never runs on the UI's event loop, and a new one starts only when the last has finished,
so a hung service slows the refresh to its timeout and never freezes the screen."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.containers import Grid, VerticalScroll
from textual.widgets import Footer, Static

from zerotick.top import render, view
from zerotick.top.history import Window
from zerotick.top.snapshot import Collector


class TopApp(App[None]):
    TITLE = "zerotick top"
    CSS = """
    #header { height: 1; padding: 0 1; }
    Grid { grid-size: 2; grid-gutter: 0 1; height: auto; }
    .panel { height: auto; }
    .wide { column-span: 2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [("q", "quit", "quit"), ("r", "scrape", "refresh now")]

    def __init__(self, collector: Collector, interval_s: float = 1.0, window_s: float = 10.0) -> None:
        super().__init__()
        self.collector = collector
        self.interval_s = interval_s
        self.window = Window(window_s)
        self.dashboard: view.Dashboard | None = None
        self.scrapes = 0
        self._scraping = False

    def compose(self) -> ComposeResult:
        yield Static("collecting…", id="header")
        with VerticalScroll(), Grid():
            for name in render.PANELS:
                wide = name in ("services", "orders", "fills")
                yield Static(id=name, classes="panel wide" if wide else "panel")
        yield Footer()

    def on_mount(self) -> None:
        self.action_scrape()
        self.set_interval(self.interval_s, self.action_scrape)

    def action_scrape(self) -> None:
        if not self._scraping:
            self._scraping = True
            self.run_worker(self._scrape(), group="scrape")

    async def _scrape(self) -> None:
        try:
            snap = await asyncio.to_thread(self.collector.take)
        finally:
            self._scraping = False
        base = self.window.push(snap)
        self.show(view.build(base, snap))

    def show(self, dashboard: view.Dashboard) -> None:
        self.dashboard = dashboard
        self.scrapes += 1
        self.query_one("#header", Static).update(render.header(dashboard))
        for name, panel in render.PANELS.items():
            self.query_one(f"#{name}", Static).update(panel(dashboard))

    def on_unmount(self) -> None:
        self.collector.close()
