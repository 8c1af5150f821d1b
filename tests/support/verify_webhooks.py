"""Checks recorded paygate deliveries with the Standard Webhooks reference
library (PyPI `standardwebhooks`): every one must verify.

Input (argv[1]): a JSON array of {"secret": "whsec_...", "headers": {...},
"body": "..."}. Prints the number verified; exits non-zero on any failure.
"""

import json
import sys

from standardwebhooks import Webhook


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        deliveries = json.load(f)
    for i, d in enumerate(deliveries):
        try:
            Webhook(d["secret"]).verify(d["body"], d["headers"])
        except Exception as e:  # the library's WebhookVerificationError
            print(f"delivery {i} ({d['headers'].get('webhook-id')}) failed: {e!r}", file=sys.stderr)
            return 1
    print(len(deliveries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
