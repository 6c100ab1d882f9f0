"""Headless Chromium, driven over its DevTools protocol with aiohttp (no extra dependency).

``Browser`` starts ``chromium --headless`` with a fresh profile and a debugging port it picks
itself, talks to it over one websocket, and for each page: loads it at 1280 x 900, measures
what a person would notice (horizontal overflow, broken images, where the headline ends, cut
cell text) and saves screenshots of the first screen and of the whole page.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

WIDTH, HEIGHT = 1280, 900
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)

#: What the page measures about itself (run in the page once it has loaded).
_MEASURE = """(() => {
  const doc = document.documentElement;
  const images = [...document.images].map(img => ({
    alt: img.alt, ok: img.complete && img.naturalWidth > 0,
    right: img.getBoundingClientRect().right}));
  const headline = document.querySelector('.rbm-headline');
  const box = headline ? headline.getBoundingClientRect() : null;
  const cells = [...document.querySelectorAll('td, th')];
  const cut = cells.filter(c => {
    const text = c.textContent.trim();
    const style = getComputedStyle(c);
    return text.endsWith('…') || text.endsWith('...') ||
      (style.textOverflow === 'ellipsis' && c.scrollWidth > c.clientWidth);
  }).map(c => c.textContent.trim());
  const wide = [...document.querySelectorAll('body *')].filter(el => {
    const r = el.getBoundingClientRect();
    if (r.right <= innerWidth + 1 || r.width === 0) return false;
    for (let p = el.parentElement; p; p = p.parentElement) {
      const s = getComputedStyle(p);
      if (['auto', 'scroll', 'hidden'].includes(s.overflowX) && p !== doc && p !== document.body)
        return false;
    }
    return true;
  }).map(el => el.tagName + '.' + el.className);
  // a table in a scrolling box that needs the scroll bar runs off the page just the same
  const scrolled = [...document.querySelectorAll('body *')].filter(el => {
    const s = getComputedStyle(el);
    return ['auto', 'scroll'].includes(s.overflowX) && el.scrollWidth > el.clientWidth + 1 &&
      el !== doc && el !== document.body;
  }).map(el => (el.querySelector('th') || el).textContent.trim().slice(0, 60));
  return {scrollWidth: doc.scrollWidth, scrolled: scrolled, innerWidth: innerWidth,
          height: doc.scrollHeight,
          images: images, headline: box && {top: box.top, bottom: box.bottom},
          headlineText: headline ? headline.innerText : null,
          cut: cut, wide: wide.slice(0, 10), title: document.title,
          text: document.body.innerText};
})()"""


@dataclass
class Page:
    """What one page measured about itself, and where its screenshots went."""

    path: Path
    measure: dict[str, Any]
    first_screen: Path
    full_page: Path

    @property
    def overflows(self) -> bool:
        return self.measure["scrollWidth"] > self.measure["innerWidth"]

    @property
    def broken_images(self) -> list[str]:
        return [image["alt"] for image in self.measure["images"] if not image["ok"]]

    @property
    def headline_in_first_screen(self) -> bool:
        box = self.measure["headline"]
        return box is not None and box["bottom"] <= HEIGHT

    @property
    def text(self) -> str:
        return self.measure["text"]


def chromium() -> str | None:
    """The Chromium executable, if installed (Debian's package ``chromium``)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """One headless Chromium for many pages; ``with Browser(folder) as b: b.check(path)``."""

    def __init__(self, screenshots: Path) -> None:
        self.screenshots = screenshots
        self._loop = asyncio.new_event_loop()
        self._profile = tempfile.mkdtemp(prefix="rbmtools-chromium-")
        self._process: subprocess.Popen[bytes] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._socket: Any = None
        self._ids = 0

    def __enter__(self) -> Browser:
        executable = chromium()
        if executable is None:
            raise RuntimeError("chromium is not installed (apt-get install chromium)")
        self._process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = self._browser_url()
        self._loop.run_until_complete(self._connect(url))
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._session is not None:
            self._loop.run_until_complete(self._session.close())
            self._session = None
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        self._loop.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def _browser_url(self) -> str:
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self._process.returncode}")
            if port_file.exists():
                lines = port_file.read_text().split()
                if len(lines) == 2:
                    return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            time.sleep(0.05)
        raise RuntimeError("chromium did not open its debugging port within 30 s")

    async def _connect(self, url: str) -> None:
        self._session = aiohttp.ClientSession()
        self._socket = await self._session.ws_connect(url, max_msg_size=0)

    async def _call(self, method: str, params: dict | None = None, session: str | None = None):
        self._ids += 1
        number = self._ids
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        await self._socket.send_str(json.dumps(message))
        while True:
            reply = json.loads((await self._socket.receive(timeout=60)).data)
            if reply.get("id") == number:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    async def _wait_event(self, name: str, session: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = json.loads((await self._socket.receive(timeout=timeout)).data)
            if reply.get("method") == name and reply.get("sessionId") == session:
                return
        raise TimeoutError(name)

    async def _check(self, path: Path, name: str) -> Page:
        target = (await self._call("Target.createTarget", {"url": "about:blank"}))["targetId"]
        session = (
            await self._call("Target.attachToTarget", {"targetId": target, "flatten": True})
        )["sessionId"]
        try:
            metrics = {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False}
            await self._call("Emulation.setDeviceMetricsOverride", metrics, session)
            await self._call("Page.enable", None, session)
            await self._call("Page.navigate", {"url": path.resolve().as_uri()}, session)
            await self._wait_event("Page.loadEventFired", session)
            evaluated = await self._call(
                "Runtime.evaluate", {"expression": _MEASURE, "returnByValue": True}, session
            )
            measure = evaluated["result"]["value"]
            self.screenshots.mkdir(parents=True, exist_ok=True)
            first = self.screenshots / f"{name}.first-screen.png"
            shot = await self._call("Page.captureScreenshot", {"format": "png"}, session)
            first.write_bytes(base64.b64decode(shot["data"]))
            full = self.screenshots / f"{name}.full-page.png"
            clip = {"x": 0, "y": 0, "width": WIDTH, "height": min(measure["height"], 16000),
                    "scale": 1}  # fmt: skip
            shot = await self._call(
                "Page.captureScreenshot",
                {"format": "png", "clip": clip, "captureBeyondViewport": True},
                session,
            )
            full.write_bytes(base64.b64decode(shot["data"]))
            return Page(path, measure, first, full)
        finally:
            await self._call("Target.closeTarget", {"targetId": target})

    def check(self, path: Path, name: str | None = None) -> Page:
        """Load ``path`` at 1280 x 900, measure it, save its screenshots as ``name``."""
        return self._loop.run_until_complete(self._check(Path(path), name or Path(path).stem))


if __name__ == "__main__":  # look at reports by hand: python tests/notebooks/browser.py FILE...
    import sys

    folder = Path(os.environ.get("SCREENSHOTS", "reports/screenshots"))
    with Browser(folder) as browser:
        for argument in sys.argv[1:]:
            page = browser.check(Path(argument))
            summary = {k: v for k, v in page.measure.items() if k not in ("text", "images")}
            summary.update(broken=page.broken_images, overflow=page.overflows,
                           headline_first_screen=page.headline_in_first_screen)  # fmt: skip
            print(page.first_screen, json.dumps(summary, indent=1)[:1500])
