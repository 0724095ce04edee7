"""Feeds eic-ec2's XML to botocore's own EC2 parser and checks what it reads.

Reads JSON on stdin: a list of cases, each
  {"name": str, "operation": str, "status": int, "xml": str,
   "expect": [[path, want], ...]}
where `operation` names the EC2 operation whose output shape botocore
parses by (DescribeInstances, DescribeInstanceConnectEndpoints), `path` is a list of keys and list indexes into the dict botocore
returns, and `want` is the value expected there, or {"absent": true} (the
key is missing), or {"datetime": "<isoformat>"} (a timezone-aware datetime
equal to that), or {"len": n} (a list of n items).

Exits 0 after printing one line per case, or 1 naming every mismatch.
"""

import datetime
import json
import sys

import botocore.parsers
import botocore.session

MISSING = object()


def walk(value, path):
    for step in path:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            return MISSING
    return value


def check(parsed, path, want):
    got = walk(parsed, path)
    where = "/".join(str(p) for p in path)
    if isinstance(want, dict) and want.get("absent"):
        return [] if got is MISSING else [f"{where}: expected absent, got {got!r}"]
    if got is MISSING:
        return [f"{where}: missing (expected {want!r})"]
    if isinstance(want, dict) and "datetime" in want:
        if not isinstance(got, datetime.datetime) or got.tzinfo is None:
            return [f"{where}: expected an aware datetime, got {got!r}"]
        expected = datetime.datetime.fromisoformat(want["datetime"])
        return [] if got == expected else [f"{where}: {got.isoformat()} != {want['datetime']}"]
    if isinstance(want, dict) and "len" in want:
        if not isinstance(got, list) or len(got) != want["len"]:
            return [f"{where}: expected a list of {want['len']}, got {got!r}"]
        return []
    # bool is an int in Python: compare types too, so 16 != "16".
    if type(got) is not type(want) or got != want:
        return [f"{where}: {got!r} != {want!r}"]
    return []


def main():
    cases = json.load(sys.stdin)
    service = botocore.session.get_session().get_service_model("ec2")
    failures = []
    for case in cases:
        parser = botocore.parsers.create_parser("ec2")
        response = {
            "body": case["xml"].encode("utf-8"),
            "headers": {},
            "status_code": case["status"],
        }
        try:
            output = service.operation_model(case["operation"]).output_shape
            parsed = parser.parse(response, output)
        except Exception as e:  # a parse failure is a finding, not a crash
            failures.append(f"{case['name']}: botocore could not parse: {e!r}")
            continue
        problems = []
        for path, want in case["expect"]:
            problems.extend(check(parsed, path, want))
        if problems:
            failures.extend(f"{case['name']}: {p}" for p in problems)
            failures.append(f"{case['name']}: parsed as {parsed!r}")
        else:
            print(f"ok {case['name']} ({len(case['expect'])} checks)")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)
    print(f"botocore {botocore.__version__}: {len(cases)} cases parsed as expected")


if __name__ == "__main__":
    main()
