// The command centre: draws the city map itself (SVG, no tiles, no third-party code) and keeps
// the alert feed and the incident list current through server-sent events.
"use strict";

const API = "/api/v1";
const SEVERITIES = ["critical", "high", "medium", "low"];
const STREAM_COLOURS = {
  power: "#b388ff", water: "#29b6f6", traffic: "#9ccc65", access: "#ffab91",
  crowd: "#f48fb1", air: "#80cbc4", presence: "#ce93d8",
};
const MAJOR_ROADS = new Set(["motorway", "trunk", "primary", "secondary", "tertiary"]);
const SVG_NS = "http://www.w3.org/2000/svg";

const state = {
  me: null, devices: new Map(), project: null, alerts: [], incidents: new Map(),
  source: null, viewBox: [0, 0, 1000, 700],
};

const $ = (id) => document.getElementById(id);

// Build DOM with textContent only: alert titles and device labels never become markup.
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

async function api(path, options = {}) {
  const response = await fetch(API + path, {
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    ...options,
  });
  if (response.status === 401) { showLogin(); throw new Error("not signed in"); }
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) throw Object.assign(new Error(body?.detail || response.statusText), { body, status: response.status });
  return body;
}

function kindOf(stream) { return (stream || "").split(".")[0]; }
function when(ts) { return new Date(ts * 1000).toLocaleTimeString([], { hour12: false }); }

// ---- sign-in ------------------------------------------------------------------------------

function showLogin() {
  if (state.source) { state.source.close(); state.source = null; }
  $("console").hidden = true;
  $("login").hidden = false;
  $("logout").hidden = true;
  $("who").textContent = "";
  setLive(false);
  $("username").focus();
}

// ---- the map ------------------------------------------------------------------------------

function makeProjection(points) {
  let [minLat, maxLat, minLon, maxLon] = [90, -90, 180, -180];
  for (const [lon, lat] of points) {
    minLat = Math.min(minLat, lat); maxLat = Math.max(maxLat, lat);
    minLon = Math.min(minLon, lon); maxLon = Math.max(maxLon, lon);
  }
  if (minLat > maxLat) { minLat = -1; maxLat = 1; minLon = -1; maxLon = 1; }
  const kx = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
  const width = Math.max((maxLon - minLon) * kx, 1e-6);
  const height = Math.max(maxLat - minLat, 1e-6);
  const W = 1000, pad = 20, H = Math.round(W * height / width) || 700;
  const scale = (W - 2 * pad) / width;
  return {
    width: W, height: H + 2 * pad,
    xy: (lon, lat) => [pad + (lon - minLon) * kx * scale, pad + (maxLat - lat) * scale],
  };
}

function drawMap(map) {
  $("city").textContent = map.city;
  const features = map.streets?.features || [];
  const points = map.devices.map((d) => [d.lon, d.lat]);
  for (const f of features) if (f.geometry?.type === "LineString") points.push(...f.geometry.coordinates);
  const project = state.project = makeProjection(points);
  state.viewBox = [0, 0, project.width, project.height];
  applyViewBox();

  const streets = $("streets");
  streets.replaceChildren();
  for (const f of features) {
    if (f.geometry?.type !== "LineString") continue;
    const d = f.geometry.coordinates.map(([lon, lat], i) => {
      const [x, y] = project.xy(lon, lat);
      return `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
    }).join("");
    const major = MAJOR_ROADS.has(f.properties?.highway);
    streets.append(svg("path", { d, class: major ? "major" : "minor" }));
  }

  const layer = $("devices");
  layer.replaceChildren();
  state.devices.clear();
  const kinds = new Set();
  for (const device of map.devices) {
    state.devices.set(device.id, device);
    const [x, y] = project.xy(device.lon, device.lat);
    const kind = kindOf(device.stream);
    kinds.add(kind);
    const dot = svg("circle", {
      cx: x.toFixed(1), cy: y.toFixed(1), r: 4.5, fill: STREAM_COLOURS[kind] || "#90a4ae",
      class: device.revoked ? "revoked" : "", "data-device": device.id,
    });
    dot.addEventListener("mouseenter", (e) => tooltip(e, `${device.id} · ${map.streams[device.stream]?.title || device.stream} · ${device.district}`));
    dot.addEventListener("mouseleave", () => tooltip(null));
    layer.append(dot);
  }
  const legend = $("legend");
  legend.replaceChildren(el("div", {}, el("b", {}, "Devices")));
  for (const kind of [...kinds].sort()) {
    const swatch = el("i"); swatch.style.background = STREAM_COLOURS[kind] || "#90a4ae";
    legend.append(el("div", {}, swatch, kind));
  }
  legend.append(el("div", {}, el("b", {}, "Open alerts")));
  for (const sev of SEVERITIES) {
    const swatch = el("i"); swatch.style.background = `var(--${sev})`;
    legend.append(el("div", {}, swatch, sev));
  }
  $("map-counts").textContent = `${map.devices.length} devices · ${features.length} street segments`;
}

function applyViewBox() { $("map").setAttribute("viewBox", state.viewBox.map((v) => v.toFixed(1)).join(" ")); }

function enablePanZoom() {
  const map = $("map");
  map.addEventListener("wheel", (e) => {
    e.preventDefault();
    const [x, y, w, h] = state.viewBox;
    const rect = map.getBoundingClientRect();
    const fx = (e.clientX - rect.left) / rect.width, fy = (e.clientY - rect.top) / rect.height;
    const k = e.deltaY < 0 ? 0.8 : 1.25;
    state.viewBox = [x + fx * w * (1 - k), y + fy * h * (1 - k), w * k, h * k];
    applyViewBox();
  }, { passive: false });
  let drag = null;
  map.addEventListener("pointerdown", (e) => { drag = { x: e.clientX, y: e.clientY, vb: [...state.viewBox] }; });
  window.addEventListener("pointerup", () => { drag = null; });
  map.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const rect = map.getBoundingClientRect();
    const [x, y, w, h] = drag.vb;
    state.viewBox = [x - (e.clientX - drag.x) * w / rect.width, y - (e.clientY - drag.y) * h / rect.height, w, h];
    applyViewBox();
  });
}

function tooltip(event, text) {
  const tip = $("tooltip");
  if (!event) { tip.hidden = true; return; }
  const rect = $("map").getBoundingClientRect();
  tip.textContent = text;
  tip.style.left = `${event.clientX - rect.left + 12}px`;
  tip.style.top = `${event.clientY - rect.top + 12}px`;
  tip.hidden = false;
}

function alertPosition(alert) {
  if (alert.lat !== null && alert.lat !== undefined && alert.lon !== null && alert.lon !== undefined) return [alert.lon, alert.lat];
  const device = state.devices.get(alert.device_id);
  return device ? [device.lon, device.lat] : null;
}

function isOpen(alert) {
  const incident = state.incidents.get(alert.incident_id);
  return !incident || incident.status !== "resolved";
}

function drawMarkers() {
  const layer = $("markers");
  layer.replaceChildren();
  if (!state.project) return;
  // Draw the worst last so that it sits on top.
  const open = state.alerts.filter(isOpen).sort((a, b) => SEVERITIES.indexOf(b.severity) - SEVERITIES.indexOf(a.severity));
  for (const alert of open) {
    const at = alertPosition(alert);
    if (!at) continue;
    const [x, y] = state.project.xy(at[0], at[1]);
    const colour = `var(--${alert.severity})`;
    const g = svg("g", { class: `marker sev-${alert.severity}`, "data-alert": alert.id });
    if (alert.severity === "critical" || alert.severity === "high") {
      g.append(svg("circle", { class: "ring", cx: x, cy: y, r: 12, stroke: colour }));
    }
    g.append(svg("circle", { class: "core", cx: x, cy: y, r: 9, fill: colour }));
    g.addEventListener("mouseenter", (e) => tooltip(e, `${alert.severity.toUpperCase()} · ${alert.title} · ${alert.device_id || ""}`));
    g.addEventListener("mouseleave", () => tooltip(null));
    layer.append(g);
  }
}

// ---- alerts and incidents -----------------------------------------------------------------

function canMark() { return ["operator", "analyst"].includes(state.me?.role); }

// An operator's verdict on an alert, kept for tuning the detector that raised it.
async function markAlert(alert, verdict, status) {
  status.textContent = "…";
  try {
    await api(`/alerts/${encodeURIComponent(alert.id)}/mark`, { method: "POST", body: JSON.stringify({ verdict }) });
    alert.marked = verdict;
    status.textContent = verdict === "true" ? "marked real" : "marked false alarm";
  } catch (error) {
    status.textContent = `not marked: ${error.message}`;
  }
}

function alertItem(alert, fresh) {
  const status = el("span", { class: "mark-status" }, alert.marked ? `marked ${alert.marked}` : "");
  const marks = canMark() ? el("div", { class: "marks" },
    el("button", { type: "button", class: "mark", "data-verdict": "true", onclick: () => markAlert(alert, "true", status) }, "True"),
    el("button", { type: "button", class: "mark", "data-verdict": "false", onclick: () => markAlert(alert, "false", status) }, "False"),
    status) : null;
  return el("li", { class: `sev-${alert.severity}${fresh ? " fresh" : ""}`, "data-alert": alert.id },
    el("div", { class: "row" },
      el("span", { class: "title" }, alert.title),
      el("span", { class: `badge ${alert.severity}` }, alert.severity)),
    alert.explanation ? el("div", { class: "explanation" }, alert.explanation) : null,
    el("div", { class: "meta" },
      `${when(alert.created_at)} · ${alert.stream} · ${alert.device_id || "—"} · ${alert.detector}`),
    marks);
}

function renderAlerts(freshId) {
  const list = $("alerts");
  list.replaceChildren(...state.alerts.slice(0, 200).map((a) => alertItem(a, a.id === freshId)));
  if (!state.alerts.length) list.append(el("li", { class: "empty" }, "No alerts."));
}

function canRun() { return state.me?.role === "operator"; }

async function act(incident, action, button) {
  button.disabled = true;
  try {
    const updated = await api(`/incidents/${encodeURIComponent(incident.id)}/${action}`, { method: "POST", body: "{}" });
    state.incidents.set(updated.id, updated);
    renderIncidents(); drawMarkers();
  } catch (error) {
    button.disabled = false;
    button.title = error.message;
  }
}

function incidentItem(incident) {
  const actions = el("div", { class: "actions" });
  if (canRun() && incident.status === "open") {
    const ack = el("button", { class: "ack", type: "button" }, "Acknowledge");
    ack.addEventListener("click", () => act(incident, "acknowledge", ack));
    actions.append(ack);
  }
  if (canRun() && incident.status !== "resolved") {
    const resolve = el("button", { class: "resolve", type: "button" }, "Resolve");
    resolve.addEventListener("click", () => act(incident, "resolve", resolve));
    actions.append(resolve);
  }
  const who = incident.resolved_by ? ` · resolved by ${incident.resolved_by}`
    : incident.acknowledged_by ? ` · taken by ${incident.acknowledged_by}` : "";
  return el("li", { class: `sev-${incident.severity} ${incident.status}`, "data-incident": incident.id },
    el("div", { class: "row" },
      el("span", { class: "title" }, incident.title),
      el("span", { class: `badge ${incident.severity}` }, incident.severity)),
    el("div", { class: "meta" },
      el("span", { class: `status-tag ${incident.status}` }, incident.status),
      ` · ${incident.district || incident.cell} · ${incident.alert_count} alert${incident.alert_count === 1 ? "" : "s"} · opened ${when(incident.opened_at)}${who}`),
    actions.childElementCount ? actions : null);
}

function renderIncidents() {
  const rank = { open: 0, acknowledged: 1, resolved: 2 };
  const all = [...state.incidents.values()].sort((a, b) =>
    rank[a.status] - rank[b.status] || SEVERITIES.indexOf(a.severity) - SEVERITIES.indexOf(b.severity) || b.updated_at - a.updated_at);
  const list = $("incidents");
  list.replaceChildren(...all.slice(0, 100).map(incidentItem));
  if (!all.length) list.append(el("li", { class: "empty" }, "No incidents."));
  const open = all.filter((i) => i.status === "open").length;
  const acked = all.filter((i) => i.status === "acknowledged").length;
  $("incident-counts").textContent = `${open} open · ${acked} acknowledged`;
}

let incidentRefresh = null;
function refreshIncidentsSoon() {
  // A burst of alerts refetches the list once.
  clearTimeout(incidentRefresh);
  incidentRefresh = setTimeout(loadIncidents, 300);
}

async function loadIncidents() {
  try {
    const incidents = await api("/incidents?limit=200");
    state.incidents = new Map(incidents.map((i) => [i.id, i]));
    renderIncidents(); drawMarkers();
  } catch (error) {
    if (error.status === 403) $("incidents").replaceChildren(el("li", { class: "empty" }, "Not available to your role."));
  }
}

async function loadAlerts() {
  try {
    state.alerts = await api("/alerts?limit=200");
    renderAlerts(); drawMarkers();
  } catch (error) {
    if (error.status === 403) $("alerts").replaceChildren(el("li", { class: "empty" }, "Not available to your role."));
  }
}

function setLive(on) {
  const live = $("live");
  live.className = `live ${on ? "on" : "off"}`;
  live.textContent = on ? "● live" : "● offline";
}

function connectFeed() {
  if (state.source) state.source.close();
  const source = state.source = new EventSource(API + "/stream/alerts");
  source.addEventListener("open", () => { setLive(true); loadIncidents(); });
  source.addEventListener("error", () => setLive(false));
  source.addEventListener("alert", (message) => {
    const alert = JSON.parse(message.data);
    state.alerts = [alert, ...state.alerts.filter((a) => a.id !== alert.id)].slice(0, 500);
    renderAlerts(alert.id); drawMarkers();
    refreshIncidentsSoon();
  });
  source.addEventListener("incident", (message) => {
    const incident = JSON.parse(message.data);
    state.incidents.set(incident.id, incident);
    renderIncidents(); drawMarkers();
  });
}

async function start() {
  try {
    state.me = await api("/auth/me");
  } catch { return; }
  $("login").hidden = true;
  $("console").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = `${state.me.username} (${state.me.role})`;
  try { drawMap(await api("/map")); } catch (error) { $("map-counts").textContent = error.message; }
  await Promise.all([loadAlerts(), loadIncidents()]);
  if (["operator", "analyst", "auditor"].includes(state.me.role)) connectFeed();
}

function tickClock() { $("clock").textContent = new Date().toLocaleString([], { hour12: false }); }

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (event) => signIn(event, start));
  $("logout").addEventListener("click", () => signOut(showLogin));
  enablePanZoom();
  tickClock(); setInterval(tickClock, 1000);
  start();
});
