"""What one NATS operation of the bus's hot path costs nats-server in CPU, alone on one local
server: core publishes, KV puts without a reply (how the claims are written), JetStream
publishes acknowledged one at a time and all in flight, and a core request/reply. The client
is Python (nats-py), so the server is idle between two sequential operations, as it is
between two small batches of a guild under light load; server CPU comes from /proc.

    pip install nats-py && N=20000 python3 loadtest/nats-op-cost/cost.py

Needs `nats-server` on PATH (scripts/install-nats-server.sh). See docs/benchmarks.md.
"""

import asyncio
import os
import subprocess
import tempfile
import time

import nats
from nats.js.api import DiscardPolicy, StorageType, StreamConfig

N = int(os.environ.get("N", "20000"))
PORT = int(os.environ.get("PORT", "24222"))
CLAIM = b'{"v":1,"owner":"user-123","guild":"g1","seq":123456}'
RECORD = b"x" * 300


def server_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def main():
    store = tempfile.mkdtemp()
    server = subprocess.Popen(
        ["nats-server", "-js", "-sd", store, "-p", str(PORT), "-a", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    await asyncio.sleep(0.5)
    nc = await nats.connect(f"nats://127.0.0.1:{PORT}")
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="KV_T", subjects=["$KV.T.>"], max_msgs_per_subject=1,
                                     storage=StorageType.FILE, allow_direct=True,
                                     discard=DiscardPolicy.NEW))
    await js.add_stream(StreamConfig(name="LOG", subjects=["log.>"], storage=StorageType.FILE,
                                     allow_direct=True, max_msgs_per_subject=10000,
                                     duplicate_window=120))

    async def measure(name, run):
        await nc.flush()
        before, started = server_cpu_seconds(server.pid), time.time()
        await run()
        await nc.flush()
        await asyncio.sleep(0.3)
        spent = server_cpu_seconds(server.pid) - before
        print(f"| {name} | {spent / N * 1e6:.1f} | {time.time() - started:.2f} s |")

    async def core_publish():
        for i in range(N):
            await nc.publish(f"nothing.{i % 100}", CLAIM)

    async def kv_put_no_reply():
        for i in range(N):
            await nc.publish(f"$KV.T.k{i}", CLAIM)

    async def log_publish_sequential():
        for i in range(N):
            await js.publish(f"log.g{i % 10}", RECORD, headers={"Nats-Msg-Id": f"m{i}"})

    async def log_publish_pipelined():
        done, acks = asyncio.Event(), [0]

        async def on_ack(_):
            acks[0] += 1
            if acks[0] == N:
                done.set()

        inbox = nc.new_inbox()
        await nc.subscribe(inbox + ".*", cb=on_ack)
        for i in range(N):
            await nc.publish(f"log.p{i % 10}", RECORD, reply=f"{inbox}.{i}",
                             headers={"Nats-Msg-Id": f"p{i}"})
        await asyncio.wait_for(done.wait(), 120)

    async def request_reply():
        async def echo(msg):
            await msg.respond(b"ok")

        await nc.subscribe("svc", cb=echo)
        for _ in range(N):
            await nc.request("svc", CLAIM, timeout=5)

    print(f"| operation ({N} each) | nats-server CPU-µs per operation | wall time |")
    print("|---|---|---|")
    await measure("core publish, no subscriber", core_publish)
    await measure("KV put as a core publish (no reply), as the claims are written", kv_put_no_reply)
    await measure("JetStream publish, acked one at a time", log_publish_sequential)
    await measure("JetStream publish, all in flight, acks collected", log_publish_pipelined)
    await measure("core request/reply, one at a time", request_reply)
    await nc.close()
    server.kill()


asyncio.run(main())
