"""A real Pyroscope SDK client for ferro's pprof receiver tests: the Python
`pyroscope-io` agent profiles this process while it burns CPU, and pushes
what it sampled to SERVER (push.v1.PusherService/Push, as the SDK does).

usage: push_profiles.py SERVER APP SECONDS
"""

import hashlib
import sys
import time

import pyroscope


def work(deadline):
    data = b"ferro"
    while time.time() < deadline:
        data = hashlib.sha256(data).digest()


def main():
    server, app, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    pyroscope.configure(
        application_name=app,
        server_address=server,
        sample_rate=100,
        upload_interval=1,
        tags={"env": "test", "region": "eu-1"},
    )
    work(time.time() + seconds)
    # Sends what is still buffered, then stops the agent.
    pyroscope.shutdown()


if __name__ == "__main__":
    main()
