// The DPO page: signs in like the command centre, then shows the privacy overview
// (GET /api/v1/dpo/overview) as plain tables. Text goes in with textContent only.
"use strict";

const API = "/api/v1";
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function table(head, rows) {
  return el("table", {},
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows));
}

const num = (value, attrs = {}) =>
  el("td", { class: "n", ...attrs }, value === null || value === undefined ? "–" : value);

async function api(path) {
  const response = await fetch(API + path, { credentials: "same-origin" });
  if (response.status === 401) { showLogin(); throw new Error("not signed in"); }
  const body = await response.json();
  if (!response.ok) throw Object.assign(new Error(body?.detail || response.statusText), { status: response.status });
  return body;
}

// ---- sign-in ------------------------------------------------------------------------------

function showLogin() {
  $("overview").hidden = true;
  $("login").hidden = false;
  $("logout").hidden = true;
  $("refresh").hidden = true;
  $("who").textContent = "";
  $("username").focus();
}

// ---- the overview -------------------------------------------------------------------------

function renderStream(s) {
  const fields = table(["field", "type", "treatment", "what it means"], s.fields.map((f) =>
    el("tr", { "data-field": f.name },
      el("td", {}, f.name), el("td", {}, f.type),
      el("td", { class: `treatment t-${f.treatment}` }, f.treatment),
      el("td", { class: "muted" }, f.note))));
  const p = s.process;
  const row = (label, figure, process, stored) =>
    el("tr", { "data-figure": figure }, el("td", {}, label),
      num(process, { "data-kind": "process" }), num(stored, { "data-kind": "stored" }));
  const rows = [
    row("readings", "readings", p.readings, s.stored.readings),
    row("refused / dead letters", "refused", p.refused, s.stored.dead_letters),
    row("values kept", "kept", p.kept, null),
    row("values generalised", "generalised", p.generalised, null),
    row("values pseudonymised", "pseudonymised", p.pseudonymised, null),
    row("lists counted", "counted", p.counted, null),
    row("values dropped", "dropped", p.dropped, null),
  ];
  if (p.consent_admitted !== null) {
    rows.push(row("consent: admitted", "consent_admitted", p.consent_admitted, null));
    rows.push(row("consent: refused", "consent_refused", p.consent_refused, null));
  }
  const reasons = Object.entries(s.stored.dead_letters_by_reason);
  for (const [reason, n] of reasons) rows.push(row(`  dead letters: ${reason}`, `dl-${reason}`, null, n));
  rows.push(row("pseudonym keys alive", "keys_alive", null, s.pseudonym_keys.alive));
  rows.push(row("pseudonym keys destroyed", "keys_destroyed", null, s.pseudonym_keys.destroyed));
  const counts = table(["figure", "this process", "stored"], rows);
  return el("div", { class: "stream", "data-stream": s.name },
    el("h3", {}, s.title, el("span", { class: "muted" }, s.name), " ",
      el("span", { class: `tag ${s.category}` }, s.category.replace("_", " "))),
    el("div", { class: "facts" },
      el("span", {}, "legal basis ", el("b", {}, s.legal_basis.replaceAll("_", " "))),
      el("span", {}, "purposes ", el("b", {}, s.purposes.join(", "))),
      el("span", {}, "retention ", el("b", { class: "retention" }, `${s.retention_days} d`)),
      el("span", {}, "place ", el("b", {}, s.place)),
      s.time_bucket_s ? el("span", {}, "time rounded to ", el("b", {}, `${s.time_bucket_s} s`)) : null),
    el("div", { class: "columns" }, fields, counts));
}

function renderKeys(k) {
  const namespaces = table(["namespace", "alive"], Object.entries(k.alive_by_namespace).map(
    ([ns, n]) => el("tr", { "data-namespace": ns }, el("td", {}, ns), num(n))));
  const facts = el("div", { class: "facts" },
    el("span", {}, "subject keys alive ", el("b", { id: "subject-keys" }, k.subject_keys_alive)),
    el("span", {}, "subjects erased ", el("b", { id: "subjects-erased" }, k.subjects_erased),
      ` of ${k.subjects_known} known`),
    el("span", {}, "pseudonym keys destroyed ", el("b", { id: "keys-destroyed" }, k.pseudonym_keys_destroyed)),
    el("span", {}, "platform keys ", el("b", {}, k.platform_keys.join(", ") || "none")));
  const destroyed = k.recent_destructions.length
    ? table(["destroyed key", "when", "why"], k.recent_destructions.map((d) =>
      el("tr", {}, el("td", {}, el("code", {}, d.name)), el("td", {}, d.at), el("td", {}, d.reason))))
    : el("p", { class: "muted" }, "No key destroyed yet.");
  $("keys").replaceChildren(facts, namespaces, destroyed);
}

function renderPending(pending) {
  $("pending-count").textContent = String(pending.length);
  $("pending").replaceChildren(pending.length
    ? table(["request", "kind", "requested", "by", "waiting (days)"], pending.map((r) =>
      el("tr", { "data-request": r.id }, el("td", {}, el("code", {}, r.id)), el("td", {}, r.kind),
        el("td", {}, r.requested_at), el("td", {}, r.requested_by), num(r.waiting_days))))
    : el("p", { class: "muted" }, "Nothing pending."));
}

function renderRetention(r) {
  const policy = el("div", { class: "facts" }, ...Object.entries(r.policy_days).map(
    ([name, days]) => el("span", {}, `${name.replaceAll("_", " ")} `, el("b", {}, `${days} d`))));
  const last = el("p", { id: "last-run" },
    r.last_run_at ? `Last sweep ${r.last_run_at}.` : "No retention sweep has run yet.");
  const rows = r.targets.map((name) => el("tr", { "data-target": name },
    el("td", {}, name), num(r.last_run_removed[name]), num(r.removed_in_all_runs[name] ?? 0)));
  $("retention").replaceChildren(policy, last,
    table(["target", "removed in last sweep", "removed in all sweeps"], rows));
}

function render(o) {
  $("city").textContent = `${o.city} · catalog ${o.catalog_version}`;
  $("generated").textContent = `Overview of ${o.generated_at}. Controller: ${o.controller}.`;
  $("figures").replaceChildren(
    el("b", {}, "this process"), `: ${o.figures.process}. `,
    el("b", {}, "stored"), `: ${o.figures.stored}.`);
  const u = o.unattributed;
  const stray = Object.entries(u.stored_dead_letters_by_reason).map(([k, n]) => `${k} ${n}`).join(", ");
  $("streams").replaceChildren(...o.streams.map(renderStream),
    el("div", { class: "stream", "data-stream": "(none)" },
      el("h3", {}, "Refusals of no stream"),
      el("div", { class: "facts" },
        el("span", {}, "this process ", el("b", {}, u.process_refused)),
        el("span", {}, "stored ", el("b", {}, stray || "none")))));
  renderKeys(o.keys);
  renderPending(o.pending_requests);
  renderRetention(o.retention);
}

async function load() {
  $("denied").textContent = "";
  try {
    render(await api("/dpo/overview"));
  } catch (error) {
    if (error.status === 403) $("denied").textContent = "Your role may not read the privacy overview.";
    else if (error.message !== "not signed in") $("denied").textContent = error.message;
  }
}

async function start() {
  let me;
  try { me = await api("/auth/me"); } catch { return; }
  $("login").hidden = true;
  $("overview").hidden = false;
  $("logout").hidden = false;
  $("refresh").hidden = false;
  $("who").textContent = `${me.username} (${me.role})`;
  await load();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (event) => signIn(event, start));
  $("logout").addEventListener("click", () => signOut(showLogin));
  $("refresh").addEventListener("click", load);
  start();
});
