// The gateway's chat page: no build step, no dependencies.
// Sends the message to POST /v1/conversations with Accept: text/event-stream,
// reads the Server-Sent Events with fetch + ReadableStream, and polls
// /debug/endpoints and /readyz for the live endpoint table.
"use strict";

const $ = (id) => document.getElementById(id);
const history = [];

function setStatus(text) { $("status").textContent = text; }

function showError(text) {
  const el = $("error");
  el.textContent = text;
  el.hidden = !text;
}

// Split an SSE buffer into complete frames; returns [frames, rest].
function takeFrames(buffer) {
  const frames = [];
  let index;
  while ((index = buffer.indexOf("\n\n")) >= 0) {
    const raw = buffer.slice(0, index);
    buffer = buffer.slice(index + 2);
    const frame = { event: "message", data: [] };
    for (const line of raw.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") frame.event = value;
      else if (field === "data") frame.data.push(value);
    }
    // A frame without data (the gateway's ": keep-alive" heartbeat) is not an event.
    if (frame.data.length) frames.push({ event: frame.event, data: frame.data.join("\n") });
  }
  return [frames, buffer];
}

function onFrame(frame, state) {
  const data = frame.data ? JSON.parse(frame.data) : {};
  if (frame.event === "message") {
    state.events += 1;
    $("event-count").textContent = String(state.events);
    if (data.served_by) $("served-by").textContent = data.served_by;
    if (data.kind === "delta") {
      state.reply += data.text;
      $("reply").textContent = state.reply;
    }
  } else if (frame.event === "reset") {
    // The agent died mid-stream; the gateway restarts on another agent.
    state.reply = "";
    state.events = 0;
    $("reply").textContent = "";
    setStatus(`restarted (attempt ${data.attempt})`);
  } else if (frame.event === "done") {
    state.done = true;
    $("served-by").textContent = data.served_by;
    setStatus("done");
  } else if (frame.event === "error") {
    state.done = true;
    showError(`${data.error.code}: ${data.error.message}`);
    setStatus("failed");
  }
}

async function send(text) {
  const state = { reply: "", events: 0, done: false };
  $("reply").textContent = "";
  $("served-by").textContent = "–";
  $("event-count").textContent = "0";
  showError("");
  setStatus("sending");
  history.push({ role: "user", content: text });
  const response = await fetch("/v1/conversations", {
    method: "POST",
    headers: { "Content-Type": "application/json", "Accept": "text/event-stream" },
    body: JSON.stringify({ messages: history }),
  });
  if (!response.ok) {
    history.pop();
    let message = `HTTP ${response.status}`;
    try {
      const body = await response.json();
      message = `${body.error.code} (HTTP ${response.status}): ${body.error.message}`;
    } catch (e) { /* not JSON */ }
    showError(message);
    setStatus("failed");
    return;
  }
  setStatus("streaming");
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let frames;
    [frames, buffer] = takeFrames(buffer);
    for (const frame of frames) onFrame(frame, state);
  }
  if (!state.done) {
    showError("the stream ended early");
    setStatus("failed");
  } else if (state.reply) {
    history.push({ role: "assistant", content: state.reply });
  }
}

function cell(row, value) {
  const td = document.createElement("td");
  td.textContent = value === null || value === undefined ? "–" : String(value);
  row.appendChild(td);
}

async function refreshEndpoints() {
  try {
    const response = await fetch("/debug/endpoints", { cache: "no-store" });
    const endpoints = await response.json();
    const body = document.querySelector("#endpoints tbody");
    body.replaceChildren();
    for (const e of endpoints) {
      const row = document.createElement("tr");
      row.className = e.pickable ? "pickable" : "unpickable";
      row.dataset.address = e.address;
      for (const key of ["address", "instance_id", "zone", "state", "health", "in_flight",
                         "ejected", "stalled", "draining", "pickable"]) cell(row, e[key]);
      body.appendChild(row);
    }
  } catch (e) { /* the gateway is restarting: try again on the next tick */ }
  try {
    const ready = await fetch("/readyz", { cache: "no-store" });
    const body = await ready.json();
    const badge = $("readiness");
    badge.textContent = `${body.status} (${body.ready_endpoints} ready)`;
    badge.className = "badge " + (ready.ok ? "ready" : "not-ready");
  } catch (e) { /* same */ }
}

$("form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("message").value.trim();
  if (!text) {
    showError("Type a message first: an empty message has nothing for the agent to answer.");
    $("message").focus();
    return;
  }
  if ($("send").disabled) return;
  $("send").disabled = true;
  send(text)
    .catch((e) => { showError(String(e)); setStatus("failed"); })
    .finally(() => { $("send").disabled = false; });
});

// Enter sends; Shift+Enter starts a new line.
$("message").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("form").requestSubmit();
  }
});

refreshEndpoints();
setInterval(refreshEndpoints, 1000);
