// Shotline web console: submit a capture, follow it, show the picture and the recent jobs.
// Plain DOM APIs only; every value from the server is set as text or attribute, never as HTML.
"use strict";

const KEY_STORAGE = "shotline.apiKey";
const STEPS = ["queued", "running", "succeeded"];
const $ = (id) => document.getElementById(id);

function headers(json) {
  const result = { Accept: "application/json" };
  const key = $("api-key").value.trim();
  if (key) result.Authorization = "Bearer " + key;
  if (json) result["Content-Type"] = "application/json";
  return result;
}

class ApiError extends Error {
  constructor(body, status) {
    super(body && body.message ? body.message : "HTTP " + status);
    this.code = body && body.error ? body.error : "http_" + status;
    this.requestId = body ? body.request_id : null;
  }
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(Boolean(options.body)) });
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) throw new ApiError(body, response.status);
  return body;
}

function showSteps(status) {
  const reached = status === "failed" ? -1 : STEPS.indexOf(status);
  for (const item of $("steps").children) {
    const index = STEPS.indexOf(item.dataset.step);
    item.className = index < reached ? "done" : index === reached ? "current" : "";
  }
  if (status === "failed") $("steps").lastElementChild.className = "failed";
  $("steps").lastElementChild.textContent = status === "failed" ? "failed" : "succeeded";
}

// Before a new submit, and when it is refused: no status or pill of the previous job stays.
function resetProgress() {
  for (const item of $("steps").children) item.className = "";
  $("steps").lastElementChild.textContent = "succeeded";
  $("status").textContent = "";
}

function showError(error) {
  const box = $("error");
  box.hidden = !error;
  box.textContent = error ? error.code + ": " + error.message +
    (error.requestId ? " (request " + error.requestId + ")" : "") : "";
}

function formBody() {
  const body = { url: $("url").value.trim(), format: $("format").value };
  for (const name of ["width", "height"]) {
    const value = parseInt($(name).value, 10);
    if (!Number.isNaN(value)) body[name] = value;
  }
  if ($("full_page").checked) body.full_page = true;
  if ($("dark_mode").checked) body.dark_mode = true;
  return body;
}

function showResult(job) {
  const figure = $("result");
  const result = job.result;
  figure.hidden = !result;
  if (!result) return;
  $("result-link").href = result.url;
  const image = $("result-image");
  if (result.content_type.startsWith("image/")) {
    image.hidden = false;
    image.src = result.url;
  } else {
    image.hidden = true;
    image.removeAttribute("src");
  }
  const size = result.width ? result.width + "×" + result.height + " px, " : "";
  $("result-caption").textContent = size + Math.round(result.bytes / 1024) + " KiB " +
    result.content_type + (result.content_type.startsWith("image/") ? "" : " (open)");
  if (!result.content_type.startsWith("image/")) $("result-link").textContent = "Download " + job.id;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function follow(jobId) {
  let delay = 250;
  for (;;) {
    let job;
    try {
      job = await api("/v1/jobs/" + encodeURIComponent(jobId));
    } catch (error) {
      if (error.code !== "service_unavailable" && error.code !== "rate_limited") throw error;
      await sleep(2000);
      continue;
    }
    showSteps(job.status);
    $("status").textContent = "Job " + job.id + ": " + job.status +
      (job.attempts > 1 ? " (attempt " + job.attempts + ")" : "");
    if (job.status === "succeeded" || job.status === "failed") return job;
    await sleep(delay);
    delay = Math.min(delay * 1.5, 2000);
  }
}

async function onSubmit(event) {
  event.preventDefault();
  const button = $("submit");
  button.disabled = true;
  showError(null);
  resetProgress();
  $("result").hidden = true;
  try {
    localStorage.setItem(KEY_STORAGE, $("api-key").value.trim());
    const accepted = await api("/v1/screenshots", { method: "POST", body: JSON.stringify(formBody()) });
    showSteps(accepted.status);
    $("status").textContent = "Job " + accepted.id + ": " + accepted.status;
    const job = await follow(accepted.id);
    if (job.status === "failed") {
      showError({ code: job.error.code, message: job.error.message });
    } else {
      showResult(job);
    }
  } catch (error) {
    if (error instanceof ApiError && !$("status").textContent) resetProgress();
    showError(error);
  } finally {
    button.disabled = false;
    loadGallery();
  }
}

function tile(job) {
  const item = document.createElement("li");
  item.dataset.jobId = job.id;
  item.dataset.status = job.status;
  const link = document.createElement("a");
  link.className = "thumb";
  const result = job.result;
  if (result && result.content_type.startsWith("image/")) {
    const image = document.createElement("img");
    image.loading = "lazy";
    image.alt = job.options.url;
    image.src = result.url;
    link.href = result.url;
    link.target = "_blank";
    link.rel = "noopener";
    link.append(image);
  } else {
    const placeholder = document.createElement("span");
    placeholder.className = "placeholder";
    placeholder.textContent = result ? result.content_type : job.error ? job.error.code : job.status;
    if (result) { link.href = result.url; link.target = "_blank"; link.rel = "noopener"; }
    link.append(placeholder);
  }
  const meta = document.createElement("div");
  meta.className = "meta";
  const badge = document.createElement("span");
  badge.className = "badge " + job.status;
  badge.textContent = job.status;
  const where = document.createElement("span");
  where.className = "where";
  where.textContent = shortUrl(job.options.url);
  meta.append(badge, where);
  meta.title = job.options.url + "\n" + job.created_at;
  item.append(link, meta);
  return item;
}

// The part of a URL worth a caption: host and path, without the scheme every URL shares.
function shortUrl(url) {
  try {
    const parsed = new URL(url);
    return parsed.host + (parsed.pathname === "/" ? "" : parsed.pathname) + parsed.search;
  } catch (_) {
    return url;
  }
}

// A message about the gallery as a whole (empty, refused): one row across it, not a tile.
function galleryNote(text) {
  const note = document.createElement("li");
  note.className = "note";
  note.textContent = text;
  $("gallery").replaceChildren(note);
}

async function loadGallery() {
  const gallery = $("gallery");
  try {
    const { jobs } = await api("/v1/jobs?limit=12");
    gallery.replaceChildren(...jobs.map(tile));
    if (!jobs.length) galleryNote("No captures yet.");
  } catch (error) {
    galleryNote(error.code + ": " + error.message +
      (error.code === "unauthorized" ? " (paste your API key above)" : ""));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = localStorage.getItem(KEY_STORAGE) || "";
  $("api-key").addEventListener("change", () => {
    localStorage.setItem(KEY_STORAGE, $("api-key").value.trim());
    loadGallery();
  });
  $("capture-form").addEventListener("submit", onSubmit);
  $("refresh").addEventListener("click", loadGallery);
  loadGallery();
});
