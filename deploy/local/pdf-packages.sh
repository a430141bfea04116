#!/usr/bin/env bash
# The Debian packages the bulletin's PDF needs: WeasyPrint's pango and harfbuzz subsetter, and a
# Chinese font to embed (fonts-wqy-microhei). Installed when missing and apt-get can be run (as
# root: CI, a fresh machine); otherwise it says what to install and carries on.
set -u
pkgs="libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-wqy-microhei"
command -v dpkg >/dev/null 2>&1 || { echo "not Debian: install pango, harfbuzz and a CJK font for the bulletin's PDF" >&2; exit 0; }
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
[ -z "$missing" ] && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  if apt-get install -y -qq $missing >/dev/null 2>&1 \
     || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $missing >/dev/null 2>&1); then
    exit 0
  fi
fi
echo "the bulletin's PDF needs:$missing (sudo apt-get install$missing)" >&2
exit 0
