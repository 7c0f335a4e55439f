"""llama.cpp's own HTTP server (through the xllamacpp wheel) on loopback.

Usage: serve.py MODEL.gguf PORT [MMPROJ.gguf]

PORT 0 lets the server pick a free port. Once it listens, prints one line
`listening http://127.0.0.1:PORT` on stdout, then serves until SIGTERM or SIGINT.
Environment: N_CTX (default 4096), N_THREADS (1), N_PARALLEL (1), GRAMMAR (a
server-wide default GBNF grammar), API_KEY (then requests need it), ALIAS (the model
name the server reports).
"""

import os
import signal
import sys
import threading

import xllamacpp


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    p = xllamacpp.CommonParams()
    p.model.path = sys.argv[1]
    if len(sys.argv) == 4 and sys.argv[3]:
        p.mmproj.path = sys.argv[3]
    p.n_ctx = int(os.environ.get("N_CTX", "4096"))
    p.n_parallel = int(os.environ.get("N_PARALLEL", "1"))
    threads = int(os.environ.get("N_THREADS", "1"))
    p.cpuparams.n_threads = threads
    p.cpuparams_batch.n_threads = threads
    p.hostnames = ["127.0.0.1"]
    p.port = int(sys.argv[2])
    if os.environ.get("GRAMMAR"):
        g = p.sampling.grammar
        g.grammar = os.environ["GRAMMAR"]
        p.sampling.grammar = g
    if os.environ.get("API_KEY"):
        p.api_keys = [os.environ["API_KEY"]]
    if os.environ.get("ALIAS"):
        p.model_alias = {os.environ["ALIAS"]}

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = xllamacpp.Server(p)
    print(f"listening {server.listening_address}", flush=True)
    stop.wait()
    del server


if __name__ == "__main__":
    main()
