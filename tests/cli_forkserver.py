"""Runs `vidtwin` command lines for the slow CLI fuzz (tests/test_vtw_fuzz.py), each in a process of its own
with an address-space limit and a time limit.

A fresh interpreter spends about 3 s of CPU importing torch before a command does anything, which would be
nearly all of a fuzz run's time. This server imports vidtwin once, then forks one child per command line:
the child limits its address space (RLIMIT_AS), points stdin at /dev/null and stdout/stderr at the files it
is given, and runs the console script's `main()`, exiting with its code as `vidtwin` would.

Protocol: a JSON request a line on stdin, {"argv": [...], "stdout": PATH, "stderr": PATH, "headroom": BYTES,
"timeout": SECONDS}; a JSON answer a line on stdout, {"code": exit code (negative: killed by that signal),
"hang": killed at the time limit, "seconds": wall time, "cpu": user + system seconds, "max_rss_kib": peak RSS
(the imported modules the child shares with this server included)}.
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import signal
import sys
import time
import traceback

import vidtwin_cli.api  # noqa: F401 (torch, PyAV and the codec, imported once for every child)
from vidtwin_cli.app import build_app, main

build_app()  # and with it every command module

POLL_S = 0.01


def address_space() -> int:
    """This process's virtual memory size in bytes (VmSize), what RLIMIT_AS counts."""
    with open("/proc/self/status") as status:
        kib = next(line for line in status if line.startswith("VmSize:")).split()[1]
    return int(kib) * 1024


def child(request: dict) -> None:
    """Become `vidtwin ARGV` under the request's limits; never returns."""
    code = 70  # EX_SOFTWARE: main() itself failed
    try:
        limit = address_space() + request["headroom"]
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                                (2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):  # fmt: skip
            os.dup2(os.open(path, flags), fd)
        sys.stdin = open(0, encoding="utf-8", closefd=False)
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
        code = main(request["argv"])
        atexit._run_exitfuncs()  # what interpreter exit would run (os._exit below skips it)
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # main() lets nothing out by design: a traceback here is a finding
        traceback.print_exc()
        sys.stderr.flush()
    finally:
        os._exit(code)


def run(request: dict) -> dict:
    """Fork a child for one command line and wait for it, killing it at the time limit."""
    sys.stdout.flush()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        child(request)
    hang = False
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - started > request["timeout"]:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            hang = True
            break
        time.sleep(POLL_S)
    return {"code": os.waitstatus_to_exitcode(status), "hang": hang, "seconds": time.monotonic() - started,
            "cpu": usage.ru_utime + usage.ru_stime, "max_rss_kib": usage.ru_maxrss}


if __name__ == "__main__":
    for line in sys.stdin:
        print(json.dumps(run(json.loads(line))), flush=True)
