"""Summarises an Autobahn fuzzing-client report (reports/index.json) for scripts/autobahn.sh.

echo-stack is graded on every case (behaviour and closing behaviour); the gateway, which does
not echo, on its closing behaviour only, and on having survived the run. Exits 1 on a failure.
"""
import argparse
import collections
import json
import sys

PASSING = {"OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED"}


def case_key(case_id):
    return [int(part) for part in case_id.split(".")]


def counts(cases, field):
    tally = collections.Counter(result[field] for result in cases.values())
    return ", ".join(f"{name} {tally[name]}" for name in sorted(tally))


def failing(cases, fields):
    return sorted(
        (case for case, result in cases.items() if any(result[f] not in PASSING for f in fields)),
        key=case_key,
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("index")
    parser.add_argument("--gateway-alive", default="yes")
    parser.add_argument("--gateway-health", default="200")
    parser.add_argument("--gateway-panics", default="0")
    args = parser.parse_args()
    with open(args.index) as f:
        report = json.load(f)

    ok = True
    for agent, fields in (("echo-stack", ("behavior", "behaviorClose")), ("gateway", ("behaviorClose",))):
        cases = report.get(agent, {})
        print(f"{agent}: {len(cases)} cases")
        print(f"  behaviour:         {counts(cases, 'behavior')}")
        print(f"  closing behaviour: {counts(cases, 'behaviorClose')}")
        bad = failing(cases, fields)
        graded = " and ".join(fields)
        print(f"  failed ({graded}): {len(bad)}" + (f" -> {' '.join(bad)}" if bad else ""))
        ok = ok and not bad and bool(cases)

    survived = (
        args.gateway_alive == "yes" and args.gateway_health == "200" and args.gateway_panics == "0"
    )
    print(
        f"gateway after the run: process alive {args.gateway_alive}, "
        f"/healthz {args.gateway_health}, panics in its log {args.gateway_panics}"
    )
    ok = ok and survived
    print("RESULT: " + ("pass" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
