#!/usr/bin/env bash
# The main job: local Kafka broker, topics, simulated history, trained model, Faust worker,
# simulated live traffic with insider behaviour, and alerts in this terminal. Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/insiderwatch demo "$@"
