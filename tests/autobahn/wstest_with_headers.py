"""Runs Autobahn's `wstest` (Python 2.7) with extra HTTP headers on every opening handshake.

The fuzzing client has no setting for request headers, and the gateway's /ws refuses a
handshake without a token. This wrapper adds the headers of the JSON object in the environment
variable AUTOBAHN_EXTRA_HEADERS (e.g. {"Authorization": "Bearer ..."}) to every client
handshake, then runs wstest with the remaining arguments.

Usage: python2.7 wstest_with_headers.py SITE_DIR -- <wstest arguments>
SITE_DIR is where autobahntestsuite was installed with `pip install --target`.
"""
import inspect
import json
import os
import site
import sys


def main():
    site_dir, rest = sys.argv[1], sys.argv[2:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    site.addsitedir(site_dir)
    extra = json.loads(os.environ.get("AUTOBAHN_EXTRA_HEADERS", "{}"))

    from autobahn.websocket import protocol

    original = protocol.WebSocketClientFactory.setSessionParameters
    names = inspect.getargspec(original).args[1:]

    def with_headers(self, *args, **kwargs):
        kwargs.update(zip(names, args))
        headers = dict(kwargs.get("headers") or {})
        headers.update(extra)
        kwargs["headers"] = headers
        return original(self, **kwargs)

    protocol.WebSocketClientFactory.setSessionParameters = with_headers

    from autobahntestsuite import wstest

    sys.argv = ["wstest"] + rest
    wstest.run()


if __name__ == "__main__":
    main()
