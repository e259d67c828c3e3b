"""An exported web page in headless Chromium: what its self-check reports, and how it looks.

The page runs its self-check when opened as `names.html#check={...}` and writes the answer as JSON into an
element it adds; `chromium --headless --dump-dom` prints the page once it has loaded, so no driver or
extra package is needed. The tests and the benchmark use this.
"""

import html
import json
import re
import shutil
import subprocess
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

from dinogen.errors import DinogenError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL = "install Chromium, e.g. apt-get install -y chromium"
_ANSWER = re.compile(r'<pre id="check-result"[^>]*>(.*?)</pre>', flags=re.DOTALL)
_UNCAUGHT = re.compile(r'CONSOLE[^"]*"(Uncaught [^"]*)"')  # a script error, as --enable-logging=stderr shows it


def find_browser() -> str | None:
    """The path of a Chromium (or Chrome) on PATH, or None."""
    return next(filter(None, map(shutil.which, BROWSERS)), None)


def check_page(page: str | Path, request: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
    """Open `page` from disk with `request` as its self-check, and return the page's report."""
    url = Path(page).resolve().as_uri() + "#" + urllib.parse.urlencode({"check": json.dumps(request)})
    done = _headless(["--enable-logging=stderr", "--dump-dom", url], timeout)
    found = _ANSWER.search(done.stdout)
    if not found:
        error = _UNCAUGHT.search(done.stderr)
        reason = error.group(1) if error else "its script logged no error"
        raise DinogenError(f"the page {page} wrote no self-check report: {reason}")
    return json.loads(html.unescape(found.group(1)))


def screenshot(page: str | Path, image: str | Path, width: int, height: int, fragment: str = "") -> None:
    """A PNG of `page` opened from disk (with `#fragment`, e.g. seed=7&count=12) in a window of that size."""
    url = Path(page).resolve().as_uri() + (f"#{fragment}" if fragment else "")
    _headless([f"--screenshot={Path(image).resolve()}", f"--window-size={width},{height}", "--hide-scrollbars", url])


def _headless(arguments: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    """One headless run of Chromium, in a throwaway profile: its stdout and stderr."""
    browser = find_browser()
    if browser is None:
        raise DinogenError(f"no Chromium found (looked for {', '.join(BROWSERS)}); {INSTALL}")
    with tempfile.TemporaryDirectory(prefix="dinogen-chromium-") as profile:
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
                   "--mute-audio", f"--user-data-dir={profile}", *arguments]  # fmt: skip
        # --no-sandbox: Chromium's sandbox refuses to start as root, which CI containers are
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        tail = " ".join(done.stderr.strip().splitlines()[-1:])
        raise DinogenError(f"{browser} exited with status {done.returncode}: {tail}")
    return done
