#!/usr/bin/env bash
# `make docker-test`: builds both images and runs the compose stack end to end on a real
# Docker engine (scripts/docker_test). Needs a Docker engine at DOCKER_HOST, or root to start
# a private one (docker.io and debootstrap are installed with apt when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-deps.sh --docker
exec .venv/bin/python -m scripts.docker_test "$@"
