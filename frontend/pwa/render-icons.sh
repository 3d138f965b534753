#!/usr/bin/env bash
# Renders the PNG icons from their SVG sources (rsvg-convert, Debian librsvg2-bin). The PNGs are committed:
# Chromium's install criteria need 192 and 512 px raster icons, and the build must not depend on this tool.
set -euo pipefail
cd "$(dirname "$0")/icons"
for size in 192 512; do
  rsvg-convert -w "$size" -h "$size" icon.svg -o "icon-$size.png"
  rsvg-convert -w "$size" -h "$size" maskable.svg -o "maskable-$size.png"
done
