"""Prefix-aware routing vs least_conn on two real vLLM CPU replicas, in one run (issue #22's proof).

    venv/bin/python benchmarks/prefix_routing.py                           # print the table
    venv/bin/python benchmarks/prefix_routing.py --docs docs/gateway.md    # and write it there

Two real vLLM servers (tests/support/real_vllm.py: the tiny generated model, CPU build, prefix
caching on, 32-token KV blocks) sit behind two rendered gateways at once: one with the model's
`routing: {affinity: prefix}`, one with plain least_conn. The workload is prefix-heavy and
generated: conversations that open with one of a few long shared system prompts, each turn
resending the whole chat so far (multi-turn), after a user's think time, all conversations at once. Each round sends
the same workload shape through each gateway, with fresh text per round and gateway (so neither
can reuse the other's cached blocks); the rounds alternate which gateway goes first.

Figures, per gateway, summed over rounds:
  - hit rate: vLLM's own `vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total`
    (tokens), the difference of both replicas' counters across the gateway's requests;
  - prompt tokens computed: queried minus hit, the prefill the replicas could not skip;
  - TTFT: vLLM's own `vllm:time_to_first_token_seconds` histogram (mean over the requests), and
    the client's time to the first streamed chunk through the gateway (p50, mean);
and the ratios affinity / least_conn from the same run. Machine-dependent: on 2 shared CPU cores
with a 5 M-parameter model, prefill is cheap, so the TTFT gain is small next to a real model's.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.local import runner  # noqa: E402
from components.serving import model_router  # noqa: E402
from tests.live.real_stack import counter_total, histogram, metrics_text  # noqa: E402
from tests.support.real_vllm import shared_servers  # noqa: E402
from tests.support.stacks import small_stack  # noqa: E402
from tests.support.tiny_model import SERVED_NAME  # noqa: E402

BEGIN, END = "<!-- prefix_routing:begin -->", "<!-- prefix_routing:end -->"
HITS, QUERIES = "vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"
TTFT = "vllm:time_to_first_token_seconds"
WORDS = ("order refund invoice shipping warranty policy account password delivery return exchange receipt "
         "battery screen cable charger adapter manual install update printer router laptop monitor").split()


def stack(affinity: str):
    routing = {"affinity": affinity} if affinity != "none" else {}
    return small_stack(models=[{"id": "meta-llama/Llama-3.1-8B-Instruct", "name": "tiny", "servedModelName": SERVED_NAME,
                                "replicas": 2, "routing": routing}])


def workload(rng: random.Random, tag: str, conversations: int, turns: int, systems: int,
             system_words: int = 24) -> list[list[list[dict]]]:
    """conversations x turns chat message lists; every text carries `tag` so no two runs share blocks."""
    prompts = [f"[{tag} s{i}] You are the support assistant of shop {i}. " +
               " ".join(rng.choice(WORDS) for _ in range(system_words)) for i in range(systems)]
    out = []
    for c in range(conversations):
        messages = [{"role": "system", "content": prompts[c % systems]}]
        chat = []
        for t in range(turns):
            messages = messages + [{"role": "user", "content": f"[{tag} c{c} t{t}] " +
                                    " ".join(rng.choice(WORDS) for _ in range(5))}]
            chat.append(messages)
            messages = messages + [{"role": "assistant", "content": " ".join(rng.choice(WORDS) for _ in range(3))}]
        out.append(chat)
    return out


async def drive(url: str, key: str, chats, concurrency: int, max_tokens: int, think_s: float = 0.0,
                rng: random.Random | None = None) -> list[float]:
    """Every chat's turns in order, `concurrency` chats at a time, a user's think time (uniform
    0-2x `think_s`) before each turn; client TTFT per request (s). Without think time a closed
    loop flatters least_conn: the next turn leaves just as its replica frees a slot, so least_conn
    tends to send it back to the same replica, which real users, who pause, do not get."""
    ttfts: list[float] = []
    pauses = [[(rng or random).uniform(0, 2 * think_s) for _ in turns] for turns in chats]
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
        async def one_chat(turns, pause):
            async with sem:
                for messages, wait in zip(turns, pause):
                    await asyncio.sleep(wait)
                    start = time.monotonic()
                    first = None
                    async with client.stream("POST", "/v1/chat/completions", json={
                            "model": SERVED_NAME, "messages": messages, "max_tokens": max_tokens, "stream": True,
                            "temperature": 0}) as reply:
                        if reply.status_code != 200:
                            raise RuntimeError(f"{reply.status_code}: {(await reply.aread())[:300]!r}")
                        async for line in reply.aiter_lines():
                            if first is None and line.startswith("data: ") and '"content"' in line:
                                first = time.monotonic() - start
                    ttfts.append(first if first is not None else time.monotonic() - start)
        await asyncio.gather(*(one_chat(c, p) for c, p in zip(chats, pauses)))
    return ttfts


def snapshot(servers) -> dict:
    out = {"hits": 0.0, "queries": 0.0, "ttft_sum": 0.0, "ttft_count": 0.0, "per_replica": []}
    for s in servers:
        text = metrics_text(s)
        q = counter_total(text, QUERIES)
        out["hits"] += counter_total(text, HITS)
        out["queries"] += q
        h = histogram(text, TTFT)
        out["ttft_sum"] += h["sum"]
        out["ttft_count"] += h["count"]
        out["per_replica"].append(q)
    return out


def run(args) -> tuple[list[dict], str]:
    servers = shared_servers(2, extra_args=("--enable-prefix-caching", "--block-size", str(args.block_size),
                                            "--max-model-len", str(args.max_model_len)))
    gateways = {}
    try:
        addresses = {"tiny": [f"127.0.0.1:{s.port}" for s in servers]}
        work = Path(tempfile.mkdtemp(prefix="prefix-routing-"))
        for mode in ("prefix", "none"):
            gateways[mode] = runner.Gateway(stack(mode), f"bench-{mode}", addresses, work / mode,
                                            [servers[0].api_key], runner.free_port(), worker_processes="2").start()
            runner.wait_http(f"{gateways[mode].url}{model_router.READY_PATH}", 30)
        rng = random.Random(args.seed)
        totals = {m: {"hits": 0.0, "queries": 0.0, "ttft_sum": 0.0, "ttft_count": 0.0, "client": [],
                      "per_replica": [0.0, 0.0], "requests": 0} for m in gateways}
        # warm-up (not counted): both engines compile/allocate on their first requests
        asyncio.run(drive(gateways["none"].url, servers[0].api_key,
                          workload(rng, "warm", 4, 1, 1), 2, args.max_tokens))
        for rnd in range(args.rounds):
            order = ("none", "prefix") if rnd % 2 == 0 else ("prefix", "none")
            for mode in order:
                chats = workload(rng, f"r{rnd}{mode}", args.conversations, args.turns, args.systems,
                                 args.system_words)
                before = snapshot(servers)
                client = asyncio.run(drive(gateways[mode].url, servers[0].api_key, chats, args.concurrency,
                                           args.max_tokens, args.think_ms / 1000, random.Random(args.seed + rnd)))
                after = snapshot(servers)
                t = totals[mode]
                for k in ("hits", "queries", "ttft_sum", "ttft_count"):
                    t[k] += after[k] - before[k]
                t["per_replica"] = [p + a - b for p, a, b in zip(t["per_replica"], after["per_replica"],
                                                                 before["per_replica"])]
                t["client"] += client
                t["requests"] += len(client)
                print(f"round {rnd} {mode}: hit rate {(after['hits'] - before['hits']) / max(1, after['queries'] - before['queries']):.3f}",
                      flush=True)
    finally:
        for g in gateways.values():
            runner.stop_groups([p.pid for p in g.processes], 10, [p.proc for p in g.processes])
        for s in servers:
            s.kill()
    rows = []
    for mode, label in (("none", "least_conn"), ("prefix", "affinity: prefix")):
        t = totals[mode]
        rows.append({"gateway": label, "requests": t["requests"], "hit_rate": t["hits"] / max(1.0, t["queries"]),
                     "hits": t["hits"], "queries": t["queries"],
                     "vllm_ttft_ms": 1000 * t["ttft_sum"] / max(1.0, t["ttft_count"]),
                     "client_ttft_p50_ms": 1000 * statistics.median(t["client"]),
                     "client_ttft_mean_ms": 1000 * statistics.mean(t["client"]),
                     "split": "/".join(f"{100 * p / max(1.0, sum(t['per_replica'])):.0f}" for p in t["per_replica"])})
    settings = (f"2 real vLLM CPU replicas (tiny generated model, prefix caching on, "
                f"KV cache 64 MiB each, {args.block_size}-token blocks, max-model-len {args.max_model_len}), {args.rounds} rounds alternating the order, per round and gateway "
                f"{args.conversations} conversations x {args.turns} turns over {args.systems} shared system prompts of {args.system_words} words, "
                f"{args.concurrency} conversations at a time, think time 0-{2 * args.think_ms} ms before each turn, "
                f"{args.max_tokens} output tokens, streamed; "
                f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} CPUs, Linux {platform.release()}; "
                f"`venv/bin/python benchmarks/prefix_routing.py` ({time.strftime('%Y-%m-%d')})")
    return rows, settings


def table(rows: list[dict], settings: str) -> str:
    base, aff = rows[0], rows[1]
    lines = ["| gateway | requests | prefix-cache hit rate (vLLM) | hit tokens / queried | TTFT mean, vLLM (ms) | "
             "prompt tokens computed (queried - hit) | TTFT p50, client (ms) | TTFT mean, client (ms) | "
             "tokens queried per replica (%) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['gateway']} | {r['requests']} | {r['hit_rate']:.1%} | {r['hits']:.0f} / {r['queries']:.0f} | "
                     f"{r['vllm_ttft_ms']:.1f} | {r['queries'] - r['hits']:.0f} | {r['client_ttft_p50_ms']:.1f} | {r['client_ttft_mean_ms']:.1f} | "
                     f"{r['split']} |")
    ratio = (f"**affinity / least_conn, same run:** hit rate {aff['hit_rate'] / max(1e-9, base['hit_rate']):.2f}x, "
             f"prompt tokens computed {(aff['queries'] - aff['hits']) / max(1e-9, base['queries'] - base['hits']):.2f}x, "
             f"TTFT mean (vLLM) {aff['vllm_ttft_ms'] / max(1e-9, base['vllm_ttft_ms']):.2f}x, "
             f"TTFT p50 (client) {aff['client_ttft_p50_ms'] / max(1e-9, base['client_ttft_p50_ms']):.2f}x.")
    return "\n".join(lines) + "\n\n" + ratio + "\n\n" + settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--conversations", type=int, default=16)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--systems", type=int, default=3)
    parser.add_argument("--system-words", type=int, default=160, help="length of each shared system prompt")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--think-ms", type=int, default=500, help="mean pause before each turn (uniform 0-2x)")
    parser.add_argument("--max-tokens", type=int, default=4)
    parser.add_argument("--seed", type=int, default=22)
    parser.add_argument("--block-size", type=int, default=32, help="vLLM --block-size: prefix hits count whole "
                        "blocks; the CPU build's default (128) hides most of a short chat's reuse")
    parser.add_argument("--docs", type=Path, help=f"replace the block between {BEGIN} and {END} in this file")
    args = parser.parse_args()
    for name in ("rounds", "conversations", "turns", "systems", "concurrency", "max_tokens", "block_size", "system_words", "max_model_len"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    rows, settings = run(args)
    block = table(rows, settings)
    print(block)
    if args.docs:
        doc = args.docs.read_text()
        if BEGIN not in doc or END not in doc:
            raise SystemExit(f"{args.docs}: no {BEGIN} ... {END} block")
        args.docs.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END),
                                    lambda _: f"{BEGIN}\n{block}\n{END}", doc, flags=re.S))


if __name__ == "__main__":
    main()
