#!/bin/bash
# The main job: run a Python function in a microVM started from the Debian image.
set -euo pipefail
cd "$(dirname "$0")/.."

exec build/bin/rund-helper run --timings -- python3 -c '
import hashlib, platform
primes = [n for n in range(2, 200) if all(n % d for d in range(2, int(n ** 0.5) + 1))]
print("hello from a rund sandbox, kernel", platform.release())
print(len(primes), "primes below 200, sum", sum(primes), "sha256", hashlib.sha256(bytes(primes)).hexdigest()[:16])
'
