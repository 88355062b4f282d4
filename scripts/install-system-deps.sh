#!/usr/bin/env bash
# Installs the system packages Shotline needs (Chromium, emoji/CJK/Latin fonts, redis-server, ffmpeg) when
# they are missing. As root it uses apt-get; otherwise it says exactly what to install.
# With --bench, also the pages the benchmarks shoot (python3.11-doc); with --docker, what
# `make docker-test` needs: a Docker engine and CLI (docker.io) and debootstrap for base images
# when no registry answers (curl, which it also uses, is in the list below).
set -euo pipefail

missing=()
if [ "${1:-}" = "--bench" ]; then
  dpkg -s python3.11-doc >/dev/null 2>&1 || missing+=(python3.11-doc)
fi
if [ "${1:-}" = "--docker" ]; then
  # The CLI, and dockerd unless an engine is given by DOCKER_HOST (both come with docker.io).
  if ! command -v docker >/dev/null 2>&1 \
     || { [ -z "${DOCKER_HOST:-}" ] && ! command -v dockerd >/dev/null 2>&1; }; then
    missing+=(docker.io)
  fi
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
fi
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
# The capture browser: the same Chromium built as the headless shell (several times less CPU
# per capture than the full browser, which stays the fallback and the fidelity tests' reference).
[ -x /usr/lib/chromium/chromium-headless-shell ] || missing+=(chromium-headless-shell)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# Scroll videos (format mp4, webm, gif) are encoded with ffmpeg.
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
# The README's shell examples use curl and jq (tests/test_readme.py runs them).
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v jq >/dev/null 2>&1 || missing+=(jq)
dpkg -s fonts-noto-color-emoji >/dev/null 2>&1 || missing+=(fonts-noto-color-emoji)
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || missing+=(fonts-noto-cjk)
# Arial/Times/Courier metrics for the many pages that ask for them; without it Chromium's
# sans-serif is DejaVu Sans, whose monochrome emoticons win over the colour emoji font.
dpkg -s fonts-liberation >/dev/null 2>&1 || missing+=(fonts-liberation)
# Debian's copies of EasyList and EasyPrivacy: `shotline blocklist update --from-debian`
# refreshes the shipped lists offline from them (the images ship the lists already).
dpkg -s webext-ublock-origin-chromium >/dev/null 2>&1 || missing+=(webext-ublock-origin-chromium)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "Shotline needs these system packages: ${missing[*]}" >&2
  echo "Install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
