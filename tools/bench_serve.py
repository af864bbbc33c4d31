#!/usr/bin/env python3
"""Load on a running `moedit serve`: CLIENTS threads each send REQUESTS image
requests (POST /v1/images/generations, one after the other, distinct prompts
and seeds) and the run reports requests/s and images/s (answered requests
and their images over the wall time from the first send to the last answer)
and the p50/p99 of the request latencies seen by the clients (send to
answer, queueing included), as one JSON line. Every answer must be 200 with
n images, or the run fails. Compare a server's --max-batch 1 with its
default to see what batching waiting requests gives (docs/serve.md).

usage: tools/bench_serve.py URL [--clients 4] [--requests 5] [--size 256x256]
                            [--steps 20] [--n 1] [--api-key KEY]
"""
import argparse
import json
import threading
import time
import urllib.request


def percentile(values, p):
    """The nearest-rank percentile of values (sorted here)."""
    ordered = sorted(values)
    rank = max(1, int(-(-p * len(ordered) // 100)))
    return ordered[rank - 1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--size", default="256x256")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--n", type=int, default=1, help="images per request")
    parser.add_argument("--api-key", default="none")
    args = parser.parse_args()
    latencies, errors, lock = [], [], threading.Lock()

    def client(c):
        for r in range(args.requests):
            body = json.dumps({"prompt": f"a red circle on a blue background {c} {r}", "seed": 1000 * c + r,
                               "size": args.size, "num_inference_steps": args.steps, "n": args.n}).encode()
            request = urllib.request.Request(args.url + "/v1/images/generations", body,
                                             {"Authorization": "Bearer " + args.api_key,
                                              "Content-Type": "application/json"})
            start = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=3600) as response:
                    images = len(json.load(response)["data"])
                ok = images == args.n
            except Exception as e:  # noqa: BLE001 - every failure is reported
                ok, images = False, str(e)
            with lock:
                (latencies.append(time.perf_counter() - start) if ok else errors.append(images))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise SystemExit(f"{len(errors)} requests failed: {errors[:3]}")
    print(json.dumps({"clients": args.clients, "requests": len(latencies), "size": args.size, "steps": args.steps,
                      "n": args.n, "seconds": round(wall, 3), "requests_per_second": round(len(latencies) / wall, 3),
                      "images_per_second": round(len(latencies) * args.n / wall, 3),
                      "p50_seconds": round(percentile(latencies, 50), 3),
                      "p99_seconds": round(percentile(latencies, 99), 3)}))


if __name__ == "__main__":
    main()
