#!/usr/bin/env python3
"""Writes realistic JSON application log lines, the same bytes for the same seed.

usage: generate_logs.py MEGABYTES [SEED] [STYLE] > app.log

STYLE `plain` (the default) draws each message from a short list. `varied` makes messages
as applications write them: a long tail of lengths, words and numbers that change from line
to line, an e-mail address in about one message in eight; it compresses about as well as
real logs do (gzip level 6 to about a quarter).
"""
import json
import random
import sys

SERVICES = ["checkout", "cart", "payments", "search", "auth", "inventory"]
PATHS = ["/api/v1/orders", "/api/v1/cart/items", "/api/v2/search", "/login", "/health",
         "/api/v1/payments/authorize", "/api/v1/inventory/sku"]
MESSAGES = ["request completed", "cache miss, loading from database", "retrying upstream call",
            "user session refreshed", "payment authorised", "slow query detected",
            "validation failed for field 'email'", "connection pool exhausted, waiting"]
WORDS = ["order", "cart", "item", "user", "session", "token", "cache", "query", "timeout",
         "upstream", "retry", "payment", "invoice", "warehouse", "shipment", "discount",
         "coupon", "profile", "address", "refund", "batch", "lock", "queue", "worker",
         "connection", "replica", "shard", "index", "snapshot", "region", "zone", "quota"]
DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "shop.example.io"]
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
          "okhttp/4.12.0", "curl/8.5.0", "python-requests/2.32.3"]


def varied_message(rng):
    """A message with a long tail of lengths, changing words and ids, sometimes an e-mail."""
    words = [rng.choice(MESSAGES)]
    for _ in range(min(int(rng.paretovariate(1.0) * 4), 160)):
        roll = rng.random()
        if roll < 0.4:
            words.append(rng.choice(WORDS))
        elif roll < 0.7:
            words.append(str(rng.randrange(10 ** rng.randrange(1, 9))))
        else:
            words.append(f"{rng.choice(WORDS)}-{rng.getrandbits(24):06x}")
    if rng.random() < 0.12:
        name = f"{rng.choice(WORDS)}.{rng.choice(WORDS)}{rng.randrange(1000)}"
        words.insert(rng.randrange(1, len(words) + 1), f"{name}@{rng.choice(DOMAINS)}")
    return " ".join(words)


def main():
    megabytes = float(sys.argv[1])
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    style = sys.argv[3] if len(sys.argv) > 3 else "plain"
    if style not in ("plain", "varied"):
        sys.exit(f"unknown style {style!r}: plain or varied")
    budget = int(megabytes * 1024 * 1024)
    out = sys.stdout
    written = 0
    second = 1_714_557_600
    while written < budget:
        second += rng.random() < 0.01
        status = rng.choices([200, 201, 204, 400, 404, 500], [70, 8, 5, 8, 6, 3])[0]
        record = {
            "time": f"2024-05-01T10:{(second // 60) % 60:02d}:{second % 60:02d}.{rng.randrange(1000):03d}Z",
            "level": "ERROR" if status >= 500 else ("WARN" if status >= 400 else "INFO"),
            "service": rng.choice(SERVICES),
            "trace_id": f"{rng.getrandbits(128):032x}",
            "span_id": f"{rng.getrandbits(64):016x}",
            "method": rng.choice(["GET", "POST", "PUT", "DELETE"]),
            "path": rng.choice(PATHS),
            "status": status,
            "latency_ms": round(rng.lognormvariate(3, 1), 2),
            "user_id": rng.randrange(1, 500_000),
            "client_ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
            "user_agent": rng.choice(AGENTS),
            "msg": rng.choice(MESSAGES) if style == "plain" else varied_message(rng),
        }
        line = json.dumps(record, separators=(",", ":")) + "\n"
        out.write(line)
        written += len(line)


if __name__ == "__main__":
    main()
