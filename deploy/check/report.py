"""Result lines shared by the deploy checks: `ok - NAME` / `not ok - NAME: WHY` / `info - TEXT`.

scripts/check-deploy.sh counts the `ok` and `not ok` lines of every step for its final
`N passed, M failed` line.
"""

import sys


def ok(name: str) -> None:
    print(f"ok - {name}", flush=True)


def fail(name: str, why: str) -> None:
    detail = why.strip().replace("\n", "\n    ")
    print(f"not ok - {name}: {detail}", flush=True)


def info(text: str) -> None:
    print(f"info - {text}", flush=True)


def check(name: str, condition: bool, why: str = "condition false") -> bool:
    """Reports one boolean check; returns the condition so callers can chain."""
    if condition:
        ok(name)
    else:
        fail(name, why)
    return condition


def run_checks(name: str, assertions) -> None:
    """Runs a function that raises AssertionError on the first broken expectation."""
    try:
        assertions()
    except AssertionError as err:
        fail(name, str(err) or "assertion failed")
    except Exception as err:  # a crash in a check is a failed check, not a crashed run
        fail(name, f"{type(err).__name__}: {err}")
    else:
        ok(name)


def die(message: str) -> None:
    fail("setup", message)
    sys.exit(1)
