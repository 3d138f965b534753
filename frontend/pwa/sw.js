// Parlance's service worker: keeps the app shell (the page, its hashed script, wasm and CSS, the manifest and
// icons) so the app opens without the server and then says it cannot reach it. The API is never cached:
// answers and conversations always come from the server.
//
// This file keeps its content across builds, so browsers do not reinstall it when the app changes. Instead the
// page is always fetched from the network first and the cached copy follows it: each fresh page replaces the
// cached one, its hashed assets are cached as the page loads them, and assets no page uses any more are dropped.

const CACHE = "parlance-shell-v1";
const STATIC_FILES = ["/manifest.webmanifest", "/icons/icon.svg", "/icons/icon-192.png", "/icons/icon-512.png"];
// Content-hashed names (scripts/build-web.sh), e.g. /parlance-frontend-0123456789abcdef_bg.wasm: immutable, so cache-first is safe.
const HASHED = /^\/[\w.-]+-[0-9a-f]{8,16}(_bg)?\.(js|wasm|css)$/;
// The server's CORS layer answers `Vary: Origin`, and the page's module script and wasm preload are requested
// with an Origin header the precache requests lacked: without this, nothing cached would ever match them.
const MATCH = { ignoreVary: true };

/// The hashed assets a page loads (stylesheet and preload links, and the loader's import of the wasm).
function assetsOf(html) {
  const paths = [...html.matchAll(/["'](\/[\w.-]+-[0-9a-f]{8,16}(?:_bg)?\.(?:js|wasm|css))["']/g)].map((match) => match[1]);
  return [...new Set(paths)];
}

/// Makes `page` the cached page, and forgets hashed assets it does not use.
async function remember(page) {
  const cache = await caches.open(CACHE);
  const wanted = new Set(assetsOf(await page.clone().text()));
  await cache.put("/", page);
  for (const request of await cache.keys()) {
    const path = new URL(request.url).pathname;
    if (HASHED.test(path) && !wanted.has(path)) await cache.delete(request);
  }
  return wanted;
}

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const page = await fetch("/", { cache: "no-store" });
      if (!page.ok) throw new Error(`the page answered ${page.status}`);
      const assets = await remember(page);
      await (await caches.open(CACHE)).addAll([...assets, ...STATIC_FILES]);
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      const names = await caches.keys();
      await Promise.all(names.filter((name) => name.startsWith("parlance-") && name !== CACHE).map((name) => caches.delete(name)));
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/api/") || url.pathname === "/health") return; // always the network

  if (request.mode === "navigate") {
    // The newest page when the server is up; the cached one when it is not.
    event.respondWith(
      fetch(request)
        .then((response) => {
          if (response.ok && (response.headers.get("content-type") ?? "").startsWith("text/html")) {
            event.waitUntil(remember(response.clone()));
          }
          return response;
        })
        .catch(async () => (await caches.match("/", MATCH)) ?? Response.error()),
    );
    return;
  }
  event.respondWith(
    (async () => {
      const cached = await caches.match(request, MATCH);
      if (cached) return cached;
      const response = await fetch(request);
      if (response.ok && HASHED.test(url.pathname)) {
        const copy = response.clone();
        event.waitUntil(caches.open(CACHE).then((cache) => cache.put(request, copy)));
      }
      return response;
    })(),
  );
});
