#!/usr/bin/env python3
"""Writes realistic JSON application log lines, the same bytes for the same seed.

usage: generate_logs.py MEGABYTES [SEED] > app.log
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
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
          "okhttp/4.12.0", "curl/8.5.0", "python-requests/2.32.3"]


def main():
    megabytes = float(sys.argv[1])
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
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
            "msg": rng.choice(MESSAGES),
        }
        line = json.dumps(record, separators=(",", ":")) + "\n"
        out.write(line)
        written += len(line)


if __name__ == "__main__":
    main()
