#!/usr/bin/env bash
# System packages retina's tests need: Debian's GStreamer RTSP server (a real camera stand-in),
# PostgreSQL (the incident store's tests also run on a throwaway server, tests/postgres.py),
# Chromium (tests/test_console_browser.py drives the console in it through Playwright),
# Prometheus for promtool (tests/test_k8s_overlays.py checks the alerting rules with it) and
# python3-venv. Installed only when missing, and only when we may (root on Debian).
set -euo pipefail
need=(gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-base gstreamer1.0-plugins-good
      gstreamer1.0-plugins-bad python3-gi python3-venv postgresql chromium prometheus)
command -v dpkg-query >/dev/null || { echo "bootstrap: not Debian; install ${need[*]} yourself"; exit 0; }
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "bootstrap: missing Debian packages (run as root to install): ${missing[*]}"
  exit 0
fi
echo "bootstrap: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || true
apt-get install -y -qq "${missing[@]}" >/dev/null
