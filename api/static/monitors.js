// Shotline console, monitors: create one, list them, a timeline of each one's runs where a
// changed run shows its diff. Plain DOM APIs; server values are set as text or attributes.
"use strict";

const KEY_STORAGE = "shotline.apiKey";
const $ = (id) => document.getElementById(id);
let selected = null;

function headers(json) {
  const result = { Accept: "application/json" };
  const key = $("api-key").value.trim();
  if (key) result.Authorization = "Bearer " + key;
  if (json) result["Content-Type"] = "application/json";
  return result;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(Boolean(options.body)) });
  let body = null;
  try { body = await response.json(); } catch (_) { /* no body */ }
  if (!response.ok) {
    const error = new Error(body && body.message ? body.message : "HTTP " + response.status);
    error.code = body && body.error ? body.error : "http_" + response.status;
    throw error;
  }
  return body;
}

function showError(error) {
  $("error").hidden = !error;
  $("error").textContent = error ? error.code + ": " + error.message : "";
}

function formBody() {
  const mask = $("mask").value.split(",").map((s) => s.trim()).filter(Boolean);
  return {
    capture: { url: $("url").value.trim() },
    schedule: { interval_seconds: parseInt($("interval").value, 10) },
    threshold: parseFloat($("threshold").value) || 0,
    mask_selectors: mask,
  };
}

function monitorRow(monitor) {
  const item = document.createElement("li");
  item.dataset.monitorId = monitor.id;
  if (selected && selected.id === monitor.id) item.className = "selected";
  const where = document.createElement("span");
  where.className = "where";
  where.textContent = monitor.name || monitor.capture.url;
  const state = document.createElement("span");
  state.className = "state";
  state.textContent = monitor.paused ? "paused" :
    "every " + (monitor.schedule.interval_seconds ? monitor.schedule.interval_seconds + " s" : monitor.schedule.cron);
  item.append(where, state);
  item.addEventListener("click", () => { selected = monitor; loadMonitors(); loadRuns(); });
  return item;
}

function runTile(run) {
  const item = document.createElement("li");
  item.dataset.runId = run.id;
  item.dataset.status = run.status;
  if (run.changed) item.className = "changed";
  // A changed run shows its diff (changes outlined); any other good run its picture.
  const url = run.changed && run.diff_url ? run.diff_url : run.picture_url;
  if (url) {
    const link = document.createElement("a");
    link.href = url; link.target = "_blank"; link.rel = "noopener";
    const image = document.createElement("img");
    image.loading = "lazy";
    image.alt = run.changed ? "diff" : "picture";
    image.src = url;
    link.append(image);
    item.append(link);
  } else {
    const placeholder = document.createElement("span");
    placeholder.className = "placeholder";
    placeholder.textContent = run.error ? run.error.code : run.status;
    item.append(placeholder);
  }
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.textContent = run.scheduled_at.replace("T", " ").slice(0, 19) + " · " +
    (run.changed === true ? "changed " + (100 * run.changed_ratio).toFixed(2) + " %" :
     run.changed === false ? "no change" : run.status);
  item.append(meta);
  return item;
}

async function loadMonitors() {
  try {
    const { monitors } = await api("/v1/monitors?limit=100");
    $("monitors").replaceChildren(...monitors.map(monitorRow));
    if (selected) selected = monitors.find((m) => m.id === selected.id) || null;
    showError(null);
  } catch (error) {
    showError(error);
  }
}

async function loadRuns() {
  $("timeline-panel").hidden = !selected;
  if (!selected) return;
  $("timeline-title").textContent = "Runs of " + (selected.name || selected.capture.url);
  $("toggle").textContent = selected.paused ? "Resume" : "Pause";
  try {
    const { runs } = await api("/v1/monitors/" + encodeURIComponent(selected.id) + "/runs?limit=24");
    $("timeline").replaceChildren(...runs.map(runTile));
  } catch (error) {
    showError(error);
  }
}

async function onCreate(event) {
  event.preventDefault();
  showError(null);
  localStorage.setItem(KEY_STORAGE, $("api-key").value.trim());
  try {
    selected = await api("/v1/monitors", { method: "POST", body: JSON.stringify(formBody()) });
    await loadMonitors();
    await loadRuns();
  } catch (error) {
    showError(error);
  }
}

async function act(path) {
  if (!selected) return;
  try {
    await api("/v1/monitors/" + encodeURIComponent(selected.id) + path, { method: "POST" });
    await loadMonitors();
    await loadRuns();
  } catch (error) {
    showError(error);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = localStorage.getItem(KEY_STORAGE) || "";
  $("monitor-form").addEventListener("submit", onCreate);
  $("refresh").addEventListener("click", () => { loadMonitors(); loadRuns(); });
  $("run-now").addEventListener("click", () => act("/run"));
  $("toggle").addEventListener("click", () => act(selected && selected.paused ? "/resume" : "/pause"));
  loadMonitors();
  // Runs finish in the background: the timeline follows them.
  setInterval(() => { if (selected) loadRuns(); }, 2000);
});
