"""Makes AWS calls against a moto server for the end-to-end tests.

Usage: python3 aws_calls.py ENDPOINT < steps.json

The steps are a JSON list, run in order; the answers are printed as a JSON list.
  {"service": "iam", "call": "create_user", "args": {...},
   "account": "222222222222", "key": "AKIA...", "secret": "..."}
      one boto3 call; "account" makes it in that moto account (otherwise the account of
      the key), "key"/"secret" sign it (otherwise a dummy key, fine while auth is off),
      "verify" names the CA file of an HTTPS endpoint.
  {"auth_after": N}
      moto authenticates and authorizes every request after the next N (0: from now on).
"""

import json
import sys
import urllib.request

import boto3


def run(endpoint, step):
    if "auth_after" in step:
        request = urllib.request.Request(
            f"{endpoint}/moto-api/reset-auth",
            data=str(step["auth_after"]).encode(),
            # Not form-encoded: moto reads the number from the raw body.
            headers={"Content-Type": "text/plain"},
            method="POST",
        )
        with urllib.request.urlopen(request) as answer:
            return json.load(answer)
    client = boto3.client(
        step["service"],
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=step.get("key", "test"),
        aws_secret_access_key=step.get("secret", "test"),
        verify=step.get("verify"),
    )
    account = step.get("account")
    if account:

        def in_account(request, **_):
            request.headers["x-moto-account-id"] = account

        client.meta.events.register("before-sign.*.*", in_account)
    answer = getattr(client, step["call"])(**step.get("args", {}))
    answer.pop("ResponseMetadata", None)
    return answer


def main():
    endpoint = sys.argv[1]
    steps = json.load(sys.stdin)
    print(json.dumps([run(endpoint, step) for step in steps], default=str))


if __name__ == "__main__":
    main()
