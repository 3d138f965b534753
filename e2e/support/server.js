// Starts the real `parlance` binary on a free port, serving the built web app (frontend/dist).
//
// PARLANCE_E2E_BACKENDS picks the model stages:
//   local (default) the embedded models in PARLANCE_MODELS_DIR (`parlance models` installs them): the real
//                   thing, as a user runs it;
//   fake            every stage goes to the stand-in in fake-openai.js over the OpenAI wire protocol, for
//                   working on the app without waiting for models (its speech-to-text hears a fixed text).
// PARLANCE_BIN overrides the binary (default: the dev build in CARGO_TARGET_DIR).

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { homedir, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { startFakeOpenAi } from "./fake-openai.js";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const BACKENDS = process.env.PARLANCE_E2E_BACKENDS ?? "local";

function parlanceBinary() {
  if (process.env.PARLANCE_BIN) return process.env.PARLANCE_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? join(homedir(), ".cache/parlance/target");
  return join(target, "debug/parlance");
}

async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/// `heard`: what the stand-in's speech-to-text returns for a real recording (the test microphone's question).
/// `extraArgs`: more settings, e.g. `["--token", token]`.
export async function startParlance({ heard, extraArgs = [] }) {
  if (!["fake", "local"].includes(BACKENDS)) throw new Error(`PARLANCE_E2E_BACKENDS must be fake or local, not ${BACKENDS}`);
  const binary = parlanceBinary();
  const dist = join(REPO, "frontend/dist");
  if (!existsSync(binary)) throw new Error(`no parlance binary at ${binary}: run \`cargo build -p parlance-server\` first`);
  if (!existsSync(join(dist, "index.html"))) throw new Error(`the web app is not built in ${dist}: run \`scripts/build-web.sh\``);

  const fake = BACKENDS === "fake" ? await startFakeOpenAi({ heard }) : null;
  const port = await freePort();
  // A fresh knowledge base and conversation store per server: tests never see each other's sessions.
  const dataDir = mkdtempSync(join(tmpdir(), "parlance-e2e-data-"));
  // parlance.test: the name one test gives 127.0.0.1 for a page that is not a secure context; names other
  // than localhost and addresses must be listed (DNS rebinding).
  const args = ["--bind", `127.0.0.1:${port}`, "--frontend-dir", dist, "--turns-per-minute", "0", "--data-dir", dataDir, "--allowed-hosts", "parlance.test"];
  if (fake) {
    // No local models, so every stage (embeddings included) goes to the stand-in.
    args.push("--openai-base-url", fake.baseUrl, "--openai-api-key", "sk-e2e-stand-in", "--models-dir", "/nonexistent-parlance-e2e");
  } else {
    args.push("--models-dir", process.env.PARLANCE_MODELS_DIR ?? join(homedir(), ".cache/parlance/models"));
  }
  args.push(...extraArgs);
  const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "parlance_server=info" } });
  let log = "";
  child.stdout.on("data", (chunk) => (log += chunk));
  child.stderr.on("data", (chunk) => (log += chunk));
  const url = `http://127.0.0.1:${port}`;
  await waitForHealth(url, child, () => log);
  return {
    url,
    fake,
    log: () => log,
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await new Promise((resolve) => child.once("exit", resolve));
      }
      await fake?.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function waitForHealth(url, child, log) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`parlance exited with ${child.exitCode}:\n${log()}`);
    try {
      const response = await fetch(`${url}/health`);
      if (response.status === 200 || response.status === 503) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`parlance did not answer /health within 60 s:\n${log()}`);
}
