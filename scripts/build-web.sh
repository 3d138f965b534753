#!/usr/bin/env bash
# Builds the web app into frontend/dist: the Leptos crate for wasm32, wasm-bindgen's ES-module glue, and the
# page with content-hashed script, wasm and stylesheet names (immutable, so the server and the service worker
# may cache them for good; see server/src/routes/frontend.rs and frontend/pwa/sw.js).
#
# This replaces Trunk: Trunk has no prebuilt binary in the registries this project can reach, and building it
# from source cost every fresh machine (and every cold CI run) about 7.5 minutes and 2.1 GB of memory for
# what is a cargo build, one wasm-bindgen call and a few copies.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh

name=parlance-frontend
dist=frontend/dist
profile=wasm-release   # Cargo.toml: small over fast
out="$CARGO_TARGET_DIR/wasm32-unknown-unknown/$profile/$name.wasm"

cargo build --locked --target wasm32-unknown-unknown --profile "$profile" -p "$name" --bin "$name"

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
wasm-bindgen --target web --no-typescript --out-dir "$staging" --out-name "$name" "$out"

hash16() { sha256sum "$1" | cut -c1-16; }
# The glue names the wasm only as the default for init(); the page passes the hashed name explicitly.
wasm_hash=$(hash16 "$staging/${name}_bg.wasm")
js_hash=$(hash16 "$staging/$name.js")
css_hash=$(hash16 style/main.css)
wasm_file="$name-${wasm_hash}_bg.wasm"
js_file="$name-$js_hash.js"
css_file="main-$css_hash.css"

rm -rf "$dist.new"
mkdir -p "$dist.new/icons"
cp "$staging/${name}_bg.wasm" "$dist.new/$wasm_file"
cp "$staging/$name.js" "$dist.new/$js_file"
cp style/main.css "$dist.new/$css_file"
# The installable-app files and the capture worklet are loaded by fixed URLs, so they keep their names.
cp frontend/pwa/manifest.webmanifest frontend/pwa/sw.js frontend/pwa/pcm-capture.js "$dist.new/"
cp frontend/pwa/icons/*.svg frontend/pwa/icons/*.png "$dist.new/icons/"

# No wasm-opt: Debian's binaryen 108 rewrites the export of wasm-bindgen's externref table to point at the
# function table, and the app dies at start-up ("WebAssembly.Table.set(): Argument 1 is invalid"); with the
# size-tuned profile it saved only about 1.5 KB gzipped.
# The page has no inline script: the Content-Security-Policy (server/src/routes/guard.rs) allows only files
# from the server. The loader names the hashed files, so it is content-hashed itself.
boot="import init from \"/$js_file\";
// Registered from the page rather than from the wasm, so the app shell is cached even if the wasm fails.
if (\"serviceWorker\" in navigator) {
  addEventListener(\"load\", () => navigator.serviceWorker.register(\"/sw.js\").catch((error) => console.warn(\"service worker:\", error)));
}
init({ module_or_path: \"/$wasm_file\" });"
printf '%s\n' "$boot" >"$staging/boot.js"
boot_file="boot-$(hash16 "$staging/boot.js").js"
assets="<link rel=\"stylesheet\" href=\"/$css_file\" />
    <link rel=\"modulepreload\" href=\"/$js_file\" crossorigin=\"anonymous\" />
    <link rel=\"preload\" href=\"/$wasm_file\" as=\"fetch\" type=\"application/wasm\" crossorigin=\"anonymous\" />
    <script type=\"module\" src=\"/$boot_file\"></script>"
marker='<!-- parlance:assets -->'
grep -q "$marker" frontend/index.html || { echo "build-web: frontend/index.html lacks $marker" >&2; exit 1; }
# Off, so bash 5.2 never reads a `&` in the replacement as the matched text.
shopt -u patsub_replacement 2>/dev/null || true
page=$(<frontend/index.html)
printf '%s\n' "${page/"$marker"/"$assets"}" >"$dist.new/index.html"
cp "$staging/boot.js" "$dist.new/$boot_file"
if grep -q '<script>' "$dist.new/index.html"; then
  echo "build-web: the page has an inline <script>, which the Content-Security-Policy blocks; move it into a file" >&2
  exit 1
fi

# The API reference page (/api/docs, server/src/routes/docs.rs): Swagger UI from npm, bundled here so the
# page needs no CDN. --ignore-scripts: the package's dependency would otherwise run an analytics script.
docs_src=frontend/api-docs
if ! cmp -s "$docs_src/package-lock.json" "$docs_src/node_modules/.parlance-installed-lock"; then
  npm ci --prefix "$docs_src" --ignore-scripts --no-audit --no-fund
  cp "$docs_src/package-lock.json" "$docs_src/node_modules/.parlance-installed-lock"
fi
mkdir -p "$dist.new/api-docs"
cp "$docs_src/index.html" "$docs_src/docs.js" "$dist.new/api-docs/"
cp "$docs_src/node_modules/swagger-ui-dist/"{swagger-ui-bundle.js,swagger-ui.css,LICENSE,NOTICE} "$dist.new/api-docs/"
if grep -q '<script>' "$dist.new/api-docs/index.html"; then
  echo "build-web: the API docs page has an inline <script>, which the Content-Security-Policy blocks" >&2
  exit 1
fi

# Swap in whole, so a server serving the old build never sees half of the new one.
rm -rf "$dist.old"
[ -d "$dist" ] && mv "$dist" "$dist.old"
mv "$dist.new" "$dist"
rm -rf "$dist.old"
printf 'web app: %s (%s KB wasm, %s KB gzipped)\n' "$dist" \
  "$(($(stat -c %s "$dist/$wasm_file") / 1024))" "$(($(gzip -9c "$dist/$wasm_file" | wc -c) / 1024))"
