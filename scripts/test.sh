#!/usr/bin/env bash
# The test suite: unit tests (pure, fast) and integration tests against a real Apache Kafka
# broker that the test setup starts on 127.0.0.1. Fails (never skips) without a broker.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
.venv/bin/ruff check insiderwatch models stream tests benchmarks
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "test: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$status"
