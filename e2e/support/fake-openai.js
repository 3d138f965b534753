// THE STAND-IN for the model stages while the local speech-to-text, language model and text-to-speech backends
// are being built on other branches. It is a small OpenAI-compatible server speaking the real wire protocol,
// so Parlance talks to it exactly as it would talk to OpenAI, speaches or Ollama:
//   POST /v1/audio/transcriptions  multipart upload           -> {"text": ...}
//   POST /v1/chat/completions      JSON, "stream": true        -> server-sent events, then [DONE]
//   POST /v1/audio/speech          JSON {"input": ...}         -> a real spoken WAV, made by espeak-ng
//   POST /v1/embeddings            JSON {"input": [...]}       -> letter-count vectors
// It cannot understand speech: it answers every real recording with the question the test's microphone file
// speaks (`heard`), after checking that a real recording of plausible size arrived. Set
// PARLANCE_E2E_BACKENDS=local to run the same tests against the embedded models instead (see server.js).

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";

export async function startFakeOpenAi({ heard }) {
  const requests = [];
  const server = http.createServer(async (request, response) => {
    const body = await readBody(request);
    const path = new URL(request.url, "http://x").pathname;
    const record = { path, contentType: request.headers["content-type"] ?? "", bytes: body.length };
    requests.push(record);
    try {
      if (path === "/v1/audio/transcriptions") return transcribe(body, record, heard, response);
      if (path === "/v1/chat/completions") return chat(JSON.parse(body.toString("utf8")), record, response);
      if (path === "/v1/audio/speech") return speak(JSON.parse(body.toString("utf8")), response);
      if (path === "/v1/embeddings") return embed(JSON.parse(body.toString("utf8")), response);
      sendJson(response, 404, { error: { message: `no route ${path}` } });
    } catch (error) {
      sendJson(response, 500, { error: { message: String(error) } });
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

function readBody(request) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    request.on("data", (chunk) => chunks.push(chunk));
    request.on("end", () => resolve(Buffer.concat(chunks)));
    request.on("error", reject);
  });
}

function sendJson(response, status, value) {
  response.writeHead(status, { "content-type": "application/json" });
  response.end(JSON.stringify(value));
}

/// The uploaded file's bytes from a multipart body (the part with a filename).
function filePart(body, contentType) {
  const boundary = /boundary="?([^";]+)"?/.exec(contentType)?.[1];
  if (!boundary) return null;
  const delimiter = Buffer.from(`--${boundary}`);
  let start = body.indexOf(delimiter);
  while (start !== -1) {
    const next = body.indexOf(delimiter, start + delimiter.length);
    if (next === -1) break;
    const part = body.subarray(start + delimiter.length + 2, next - 2);
    const headerEnd = part.indexOf("\r\n\r\n");
    const headers = part.subarray(0, headerEnd).toString("utf8");
    if (/filename=/.test(headers)) return part.subarray(headerEnd + 4);
    start = next;
  }
  return null;
}

function transcribe(body, record, heard, response) {
  const file = filePart(body, record.contentType);
  record.audioBytes = file?.length ?? 0;
  record.audioMagic = file ? file.subarray(0, 4).toString("hex") : "";
  // Less than a few KB cannot be a second of speech in any codec: answer as a real STT would to silence.
  if (!file || file.length < 4000) return sendJson(response, 200, { text: "" });
  sendJson(response, 200, { text: heard });
}

function chat(request, record, response) {
  if (request.stream !== true) return sendJson(response, 400, { error: { message: "the stand-in only streams" } });
  const messages = request.messages ?? [];
  const last = messages[messages.length - 1]?.content ?? "";
  const earlier = messages.filter((m) => m.role === "user" || m.role === "assistant").length - 1;
  record.question = last;
  const answer = `You asked: ${last} This is the stand-in model; I was shown ${earlier} earlier messages.`;
  response.writeHead(200, { "content-type": "text/event-stream" });
  const chunk = (delta, finish = null) =>
    `data: ${JSON.stringify({ id: "chatcmpl-e2e", object: "chat.completion.chunk", created: 0, model: request.model, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  for (const word of answer.split(/(?<= )/)) response.write(chunk({ content: word }));
  response.write(chunk({}, "stop"));
  response.end("data: [DONE]\n\n");
}

function speak(request, response) {
  const text = String(request.input ?? "").slice(0, 500);
  // A file rather than --stdout: only then does espeak-ng write the real sizes into the WAV header.
  const dir = mkdtempSync(join(tmpdir(), "parlance-e2e-tts-"));
  try {
    const file = join(dir, "answer.wav");
    const spoken = spawnSync("espeak-ng", ["-s", "190", "-w", file, text]);
    if (spoken.status !== 0) return sendJson(response, 500, { error: { message: `espeak-ng failed: ${spoken.stderr}` } });
    response.writeHead(200, { "content-type": "audio/wav" });
    response.end(readFileSync(file));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function embed(request, response) {
  const inputs = Array.isArray(request.input) ? request.input : [request.input];
  const data = inputs.map((text, index) => {
    const vector = new Array(26).fill(0);
    for (const c of String(text).toLowerCase()) if (c >= "a" && c <= "z") vector[c.charCodeAt(0) - 97] += 1;
    return { object: "embedding", index, embedding: vector };
  });
  sendJson(response, 200, { object: "list", data, model: request.model });
}
