"""Reference for the pipeline benchmark: a Faust agent that does nothing but take_events.

It measures Faust's own per-event ceiling on this machine and broker: the path insiderwatch's
batch intake (stream/intake.py) goes around. bench_pipeline.py runs it on its pre-filled topic
in the same run; by hand:

    cd benchmarks && NOOP_BROKER=127.0.0.1:29092 APPID=noop-$RANDOM TOPIC=bench-events-XXXX \
        BUF=20000 MPR=10000 ../.venv/bin/python -m faust -A faust_noop_app worker -l warn \
        --without-web

It prints ``RATE <events/s>`` over the first 300,000 events.
"""

import os
import time

import faust

app = faust.App(
    os.environ["APPID"],
    broker="kafka://" + os.environ.get("NOOP_BROKER", "127.0.0.1:29092"),
    store="memory://",
    consumer_auto_offset_reset="earliest",
    web_port=6095,
    web_bind="127.0.0.1",
    key_serializer="raw",
    value_serializer="raw",
    topic_partitions=6,
    stream_buffer_maxsize=int(os.environ.get("BUF", "4096")),
    broker_max_poll_records=int(os.environ.get("MPR", "0")) or None,
    consumer_max_fetch_size=8 * 1024 * 1024,
)
topic = app.topic(
    os.environ["TOPIC"],
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
)
N = [0, None]


@app.agent(topic)
async def noop(stream):
    async for batch in stream.take_events(1000, within=0.1):
        if N[1] is None:
            N[1] = time.time()
        N[0] += len(batch)
        if N[0] >= 300000:
            print(f"RATE {N[0] / (time.time() - N[1]):.0f}", flush=True)
            N[0] = -(10**9)
