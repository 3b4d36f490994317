"""`tierscale bench`: load tests against any OpenAI-compatible endpoint, with SLO gates.

Modules: workload (request sizes and arrival times), client (the streaming client and the load
loop), metrics (aggregation and gates), report (tables, JSON, sweep PNGs and HTML), scenarios
(scenario files, e.g. benchmarks/scenarios/whitepaper.yaml), command (options -> runs -> exit code).

Why Locust (its FastHttpSession on geventhttpclient, driven by our own gevent scheduler).
Measured before choosing (tests/bench/measure_generators.py): the project's stub backend on
loopback (TTFT 50 ms, ITL 10 ms, 16 tokens), 200 concurrent streaming chat completions for 10 s,
generator CPU = user+sys of its process (wait4), on this 2-core machine shared with other jobs
(load average 8 during the run):

    generator                requests   req/s   CPU s   CPU ms/req   cores used
    asyncio + httpx 0.28.1        399    26.7    5.71        14.31         0.38
    Locust 2.47.0 FastHttp       4729   442.4    6.13         1.30         0.57

(An earlier run, load average ~4: httpx 22.4 ms/req at 42 req/s, Locust 1.42 ms/req at 449 req/s;
at 20 streams, where the stub sets the pace for both, httpx 6.5 and Locust 3.5 ms/req including
start-up.) httpx spends about 10x the CPU per streamed request and cannot hold 200 streams on
this box; Locust's client can, at about half a core for ~450 streamed requests/s. So the
generator is not the bottleneck at the scale 2 cores can drive.
- guidellm 0.8.1 (vLLM's own) was not measured: it requires torch, transformers and datasets
  (gigabytes) and pins click~=8.4, which conflicts with this project's click 8.5.1 pin.
- `vllm bench serve` / llmperf need the full vllm package (CUDA wheels, torch) or Ray.
Locust's own user model is closed-loop (N users), while `vllm bench serve` semantics need open-
loop arrivals (Poisson/gamma at a rate) and trace replay at recorded times; so its HTTP session
is used per request and the arrival process is ours (client.run), on gevent like Locust's own
runner. Lines are read as they arrive (geventhttpclient readline), so TTFT is not delayed by
buffering.
"""
