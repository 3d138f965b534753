// A private PulseAudio server whose only output is a null sink, for Firefox: with no sound server its Web Audio
// never starts (an AudioContext stays suspended), so the app could neither play an answer nor record from the
// page's microphone. Chromium needs none (it runs Web Audio on a fake device when there is no sound card).

import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/// Starts the server; `env` is what a browser needs to use it (PULSE_SERVER), `stop()` ends it.
export async function startSoundServer() {
  const dir = mkdtempSync(join(tmpdir(), "parlance-e2e-pulse-"));
  // As root, PulseAudio runs only in system mode, where it becomes the `pulse` user: it must reach the socket.
  chmodSync(dir, 0o777);
  const socket = join(dir, "native");
  const args = [
    "--daemonize=no",
    "--disallow-exit",
    "--disable-shm",
    "--exit-idle-time=-1",
    "-n",
    "--load=module-null-sink sink_name=parlance_e2e",
    `--load=module-native-protocol-unix auth-anonymous=1 socket=${socket}`,
    "--log-target=stderr",
  ];
  if (process.getuid?.() === 0) args.unshift("--system");
  const child = spawn("pulseaudio", args, { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr.on("data", (chunk) => (log += chunk));
  // A missing binary is an `error` event, not an exit: without a listener it would end the whole test run.
  let failed = null;
  child.on("error", (error) => (failed = error));
  const exited = new Promise((resolve) => child.on("exit", resolve));
  for (let waited = 0; !existsSync(socket); waited += 50) {
    if (failed || child.exitCode !== null || waited > 10_000) {
      child.kill("SIGKILL");
      throw new Error(`pulseaudio did not start (scripts/setup.sh installs it): ${failed?.message ?? ""}\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    env: { PULSE_SERVER: `unix:${socket}` },
    async stop() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}
