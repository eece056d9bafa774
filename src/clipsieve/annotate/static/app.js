// clipsieve labelling page: one key per decision, every decision saved at once.
// Keys: 1 good, 0 bad, s skip, u undo, ArrowLeft/ArrowRight move. Posts are chained so they
// reach the server in key order (an undo never overtakes the label it takes back).
"use strict";

// history: what this page did, newest last, so undo can move back at once (before the server
// answers) and the next key press already acts on the right clip.
const state = { clips: [], index: 0, labeller: "", session: "", pending: 0, history: [] };
let chain = Promise.resolve();

function newSession() {
  const bytes = new Uint8Array(12);
  (window.crypto || {}).getRandomValues
    ? window.crypto.getRandomValues(bytes)
    : bytes.forEach((_, i) => { bytes[i] = Math.floor(Math.random() * 256); });
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function $(id) { return document.getElementById(id); }

function message(text) { $("message").textContent = text || ""; }

function render() {
  const clip = state.clips[state.index];
  const done = state.clips.filter((c) => c.label !== null).length;
  $("progress").textContent =
    `${state.index + 1} / ${state.clips.length} · ${done} labelled`;
  if (!clip) { $("clip-id").textContent = "no clips"; return; }
  $("clip-id").textContent = clip.clip_id;
  $("caption").textContent = clip.caption || "";
  const video = $("video");
  if (video.dataset.url !== clip.url) {
    video.dataset.url = clip.url;
    video.src = clip.url;
    video.play().catch(() => {});
  }
  const verdict = $("verdict");
  verdict.className = "verdict" + (clip.label === 1 ? " good" : clip.label === 0 ? " bad" : "");
  verdict.textContent = clip.label === 1 ? "good" : clip.label === 0 ? "bad" : "";
  const rows = Object.entries(clip.scores || {}).map(([name, value]) => {
    const tr = document.createElement("tr");
    const a = document.createElement("td");
    const b = document.createElement("td");
    a.textContent = name;
    b.textContent = value === null ? "—" : String(value);
    tr.append(a, b);
    return tr;
  });
  $("scores").replaceChildren(...rows);
}

function move(step) {
  state.index = Math.max(0, Math.min(state.clips.length - 1, state.index + step));
  render();
}

function applyResult(result) {
  const clip = state.clips.find((c) => c.clip_id === result.clip_id);
  if (clip) { clip.label = result.label; clip.labeller = result.labeller; }
  return clip;
}

function post(url, body) {
  state.pending += 1;
  const run = chain.then(async () => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return response.json();
  });
  chain = run.catch(() => {}).finally(() => { state.pending -= 1; });
  return run.catch((err) => { message(`not saved: ${err.message}`); throw err; });
}

function label(value) {
  const clip = state.clips[state.index];
  if (!clip) return;
  state.history.push({ index: state.index, label: clip.label, labeller: clip.labeller });
  if (value !== "skip") { clip.label = value; }
  post("/api/label", {
    clip_id: clip.clip_id, label: value, session: state.session, labeller: state.labeller,
  }).then((result) => { applyResult(result); message(""); render(); }).catch(() => {});
  move(1);
}

function undo() {
  const last = state.history.pop();
  if (!last) { message("nothing to undo on this page"); return; }
  const clip = state.clips[last.index];
  clip.label = last.label;
  clip.labeller = last.labeller;
  state.index = last.index;
  render();
  post("/api/undo", { session: state.session }).then((result) => {
    if (result.clip_id) { applyResult(result); message(`undone: ${result.clip_id}`); render(); }
  }).catch(() => {});
}

function onKey(key) {
  if (key === "1") label(1);
  else if (key === "0") label(0);
  else if (key === "s") label("skip");
  else if (key === "u") undo();
  else if (key === "ArrowRight" || key === "ArrowDown") move(1);
  else if (key === "ArrowLeft" || key === "ArrowUp") move(-1);
  else return false;
  return true;
}

document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement || event.ctrlKey || event.metaKey) return;
  if (onKey(event.key)) event.preventDefault();
});

document.querySelectorAll("button[data-key]").forEach((button) => {
  button.addEventListener("click", () => { onKey(button.dataset.key); button.blur(); });
});

async function start() {
  state.session = newSession();
  const response = await fetch("/api/state");
  if (!response.ok) { message(`cannot load clips: HTTP ${response.status}`); return; }
  const data = await response.json();
  state.clips = data.clips;
  state.index = data.start;
  $("run").textContent = `${data.run} · ${data.sample} order`;
  const input = $("labeller");
  state.labeller = localStorage.getItem("clipsieve-labeller") || data.labeller;
  input.value = state.labeller;
  input.addEventListener("change", () => {
    const name = input.value.trim();
    if (/^[\w .@+-]{1,64}$/.test(name)) {
      state.labeller = name;
      localStorage.setItem("clipsieve-labeller", name);
      message("");
    } else {
      message("labeller: 1-64 letters, digits, spaces or . @ + - _");
    }
    input.blur();
  });
  document.body.dataset.ready = "1";
  render();
}

window.clipsieve = state;
start();
