// The mini-slurm dashboard: reads the JSON API every 5 s and draws the queue with expected
// starts, running jobs, nodes, usage per user, the history chart and the timeline. Text from
// the server only ever goes into textContent (job names are the users').
"use strict";

const REFRESH_MS = 5000;
const SVG = "http://www.w3.org/2000/svg";

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) {
    e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  }
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}

// Slurm's time format, in UTC: YYYY-MM-DDTHH:MM:SS.
function iso(ms) { return new Date(ms).toISOString().slice(0, 19); }

function dur(ms) {
  let s = Math.max(0, Math.round(ms / 1000));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  const p = (n) => String(n).padStart(2, "0");
  return (d ? d + "-" : "") + (d || h ? p(h) + ":" : "") + p(m) + ":" + p(s);
}

function label(j) {
  return j.array_job_id != null && j.array_task_id != null ? j.array_job_id + "_" + j.array_task_id : String(j.id);
}

async function get(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

function fill(tbody, rows, cols, empty) {
  tbody.replaceChildren();
  if (!rows.length) {
    tbody.append(el("tr", {}, el("td", { class: "empty", colspan: String(cols) }, empty)));
    return;
  }
  for (const r of rows) tbody.append(r);
}

function bar(frac, over) {
  const b = el("span", { class: "bar" + (over ? " over" : "") });
  const s = el("span");
  s.style.width = Math.min(100, Math.max(0, frac * 100)).toFixed(1) + "%";
  b.append(s);
  return b;
}

// As `queue` says it: a pending job with no recorded reason waits for resources (the one
// with the highest priority, then the oldest) or behind higher priorities.
function reasons(pending) {
  const free = pending.filter((j) => j.reason === "None");
  let top = null;
  for (const j of free) {
    if (top === null || j.priority > top.priority || (j.priority === top.priority && j.id < top.id)) top = j;
  }
  const out = new Map();
  for (const j of pending) {
    out.set(j.id, j.reason !== "None" ? j.reason : top && j.id === top.id ? "Resources" : "Priority");
  }
  return out;
}

function renderCards(stats) {
  const c = stats.capacity, a = stats.allocated, by = stats.jobs.by_state;
  const card = (k, v) => el("div", { class: "card" }, el("div", { class: "v" }, v), el("div", { class: "k" }, k));
  const pct = (x, t) => (t ? Math.round((100 * x) / t) + "%" : "–");
  $("cards").replaceChildren(
    card("CPUs in use", a.cpus + " / " + c.cpus + " (" + pct(a.cpus, c.cpus) + ")"),
    card("Memory in use", Math.round(a.mem_mb / 1024) + " / " + Math.round(c.mem_mb / 1024) + " GB"),
    card("GPUs in use", a.gpus + " / " + c.gpus),
    card("Running", by.RUNNING || 0),
    card("Pending", by.PENDING || 0),
    card("Backfilled", stats.scheduler.backfilled),
    card("Mean pass", (stats.scheduler.pass_mean_us / 1000).toFixed(2) + " ms"),
  );
  $("policy").textContent = "policy " + stats.policy;
}

function renderQueue(jobs, now, plan) {
  const pending = jobs.filter((j) => j.state === "PENDING");
  const why = reasons(pending);
  $("queue-count").textContent = "(" + pending.length + " pending)";
  $("plan-note").textContent = "Expected starts: " + plan.description + ".";
  const rows = pending.map((j) => {
    const start = j.expected_start_ms;
    const cell = start != null
      ? el("td", { class: "start", "data-expected-start": iso(start) },
          iso(start), el("span", { class: "muted" }, start > now ? "  in " + dur(start - now) : "  due"))
      : el("td", { class: "start unknown" }, "N/A (unknown)");
    return el("tr", { "data-job": String(j.id) },
      el("td", {}, label(j)), el("td", {}, j.name), el("td", {}, j.user), el("td", { class: "num" }, j.cpus),
      el("td", { class: "num" }, j.priority), el("td", { class: "state PENDING" }, "PENDING"),
      el("td", {}, why.get(j.id)), cell);
  });
  fill($("queue").tBodies[0], rows, 8, "no job waits");
}

function renderRunning(jobs, now) {
  const running = jobs.filter((j) => j.state === "RUNNING" || j.state === "CONFIGURING");
  $("running-count").textContent = "(" + running.length + ")";
  const rows = running.map((j) => {
    const el_ms = now - (j.start_ms || now);
    const limit = j.time_limit_ms;
    const prog = el("td", {}, bar(limit ? el_ms / limit : 0, limit && el_ms > limit), " ",
      dur(el_ms) + " / " + (limit ? dur(limit) : "UNLIMITED"));
    return el("tr", { "data-job": String(j.id) },
      el("td", {}, label(j)), el("td", {}, j.name), el("td", {}, j.user),
      el("td", { class: "num" }, j.alloc_cpus || j.cpus), el("td", { class: "state " + j.state }, j.state),
      prog, el("td", {}, j.start_ms ? iso(j.start_ms) : ""), el("td", {}, j.cpu_list || "-"));
  });
  fill($("running").tBodies[0], rows, 8, "nothing runs");
}

function renderNodes(nodes) {
  const box = $("nodes");
  box.replaceChildren();
  for (const n of nodes) {
    const row = (k, used, total, unit) => el("div", { class: "row" }, el("span", { class: "k" }, k),
      bar(total ? used / total : 0, false), el("span", {}, used + " / " + total + unit));
    const d = el("div", { class: "node" }, el("div", { class: "name" }, n.name + "  ",
      el("span", { class: "muted" }, n.jobs.length + " job(s)")),
      row("CPUs", n.cpus_alloc, n.cpus, ""),
      row("Memory", Math.round(n.mem_alloc_mb / 1024), Math.round(n.mem_mb / 1024), " GB"));
    if (n.gpus) d.append(row("GPUs", n.gpus_alloc, n.gpus, ""));
    box.append(d);
  }
}

function renderUsers(users) {
  const rows = users.map((u) => el("tr", {},
    el("td", {}, u.user), el("td", { class: "num" }, u.running), el("td", { class: "num" }, u.cpus_alloc),
    el("td", { class: "num" }, u.pending), el("td", { class: "num" }, (u.cpu_seconds / 3600).toFixed(2)),
    el("td", {}, bar(u.share, false), " " + Math.round(u.share * 100) + "%")));
  fill($("users").tBodies[0], rows, 6, "no usage yet");
}

// Axes and a time scale over [t0, t1] into [x0, x1], ticks in UTC; a dashed line at now.
function timeAxis(g, t0, t1, x0, x1, top, y, now) {
  const sx = (t) => x0 + ((t - t0) / Math.max(1, t1 - t0)) * (x1 - x0);
  g.append(svg("line", { x1: x0, x2: x1, y1: y, y2: y, class: "axis" }));
  const secs = t1 - t0 < 20 * 60000;
  for (let i = 0; i <= 6; i++) {
    const t = t0 + ((t1 - t0) * i) / 6;
    const anchor = i === 0 ? "start" : i === 6 ? "end" : "middle";
    g.append(svg("text", { x: sx(t), y: y + 14, "text-anchor": anchor }, iso(t).slice(11, secs ? 19 : 16)));
  }
  if (now >= t0 && now <= t1) {
    g.append(svg("line", { x1: sx(now), x2: sx(now), y1: top, y2: y, stroke: "#d64545", "stroke-dasharray": "3 3" }));
    const edge = sx(now) > x1 - 30 ? "end" : "middle";
    g.append(svg("text", { x: sx(now), y: top - 3, "text-anchor": edge, style: "fill:#d64545" }, "now"));
  }
  return sx;
}

function renderHistory(h) {
  const box = $("history");
  const W = box.clientWidth || 1000, H = 220, L = 44, R = W - 44, T = 30, B = H - 24;
  box.setAttribute("viewBox", "0 0 " + W + " " + H);
  box.replaceChildren();
  const s = h.samples;
  if (!s.length) { box.append(svg("text", { x: L, y: 40 }, "no samples yet")); return; }
  // At least the last 2 minutes, now at the right edge.
  const t1 = h.now_ms, t0 = Math.min(s[0].t_ms, t1 - 2 * 60000);
  $("history-span").textContent = "since " + iso(s[0].t_ms) + " UTC, a sample every " +
    Math.round(h.every_ms / 1000) + " s and after passes";
  const sx = timeAxis(box, t0, t1, L, R, T, B, t1);
  const qmax = Math.max(4, ...s.map((x) => x.pending));
  const yu = (f) => B - f * (B - T);
  // A value holds until the next sample: steps, not slopes.
  const line = (f, color, name, x) => {
    let d = "M" + sx(s[0].t_ms).toFixed(1) + " " + yu(f(s[0])).toFixed(1);
    for (const p of s.slice(1)) d += " H" + sx(p.t_ms).toFixed(1) + " V" + yu(f(p)).toFixed(1);
    d += " H" + sx(t1).toFixed(1);
    box.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": 2 }));
    box.append(svg("rect", { x, y: 4, width: 10, height: 10, fill: color }));
    box.append(svg("text", { x: x + 14, y: 13 }, name));
  };
  line((p) => (p.cpus ? p.cpus_alloc / p.cpus : 0), "#2f9e62", "CPUs allocated (left axis, %)", L);
  line((p) => p.pending / qmax, "#d98c1f", "jobs waiting (right axis)", L + 210);
  for (const f of [0, 0.5, 1]) {
    box.append(svg("line", { x1: L, x2: R, y1: yu(f), y2: yu(f), class: "axis" }));
    box.append(svg("text", { x: L - 6, y: yu(f) + 4, "text-anchor": "end" }, Math.round(f * 100) + "%"));
    box.append(svg("text", { x: R + 6, y: yu(f) + 4 }, Math.round(f * qmax)));
  }
}

function renderGantt(jobs, now) {
  const box = $("gantt");
  const W = box.clientWidth || 1000, L = 170, R = W - 16, T = 40, ROW = 18;
  const shown = jobs.filter((j) => j.start_ms != null || j.expected_start_ms != null)
    .map((j) => {
      const planned = j.state === "PENDING";
      const start = planned ? j.expected_start_ms : j.start_ms;
      const limit = j.time_limit_ms;
      const end = j.end_ms != null && !planned ? j.end_ms : limit ? Math.max(start + limit, now) : now;
      return { j, start, end, planned, running: j.state === "RUNNING" || j.state === "CONFIGURING" };
    })
    .filter((x) => x.start != null)
    .sort((a, b) => a.start - b.start || a.j.id - b.j.id)
    .slice(-40);
  const H = T + shown.length * ROW + 26;
  box.setAttribute("viewBox", "0 0 " + W + " " + H);
  box.style.height = H + "px";
  box.replaceChildren();
  if (!shown.length) { box.append(svg("text", { x: 10, y: 20 }, "no job has run or been planned yet")); return; }
  const t0 = Math.min(...shown.map((x) => x.start), now - 60000);
  const t1 = Math.max(now + 60000, Math.min(Math.max(...shown.map((x) => x.end)), now + 6 * 3600000));
  const sx = timeAxis(box, t0, t1, L, R, T - 8, H - 22, now);
  [["#9aa3af", "completed"], ["#d64545", "failed, cancelled, timed out"], ["#2f9e62", "running"],
    ["#bfe5cf", "running, to its time limit"], ["#dbe5fa", "planned (expected start to time limit)"]]
    .forEach(([c, name], i) => {
      box.append(svg("rect", { x: 6 + i * 190, y: 2, width: 10, height: 10, fill: c }));
      box.append(svg("text", { x: 20 + i * 190, y: 11 }, name));
    });
  shown.forEach((x, i) => {
    const y = T + i * ROW;
    box.append(svg("text", { x: 6, y: y + 11 }, label(x.j) + " " + x.j.name.slice(0, 14) + " (" + x.j.user + ")"));
    const x0 = sx(x.start), x1 = Math.max(x0 + 2, sx(Math.min(x.end, t1)));
    let color = "#9aa3af", extra = {};
    if (x.planned) { color = "#3b6fd8"; extra = { fill: "#dbe5fa", stroke: color, "stroke-dasharray": "4 2" }; }
    else if (x.running) color = "#2f9e62";
    else if (x.j.state !== "COMPLETED") color = "#d64545";
    const rect = svg("rect", Object.assign({ x: x0, y, width: x1 - x0, height: ROW - 4, rx: 2, fill: color }, extra));
    rect.append(svg("title", {}, label(x.j) + " " + x.j.state + " " + iso(x.start) + " → " + iso(x.end)));
    box.append(rect);
    if (x.running && x.end > now) {
      box.append(svg("rect", { x: sx(now), y, width: Math.max(0, x1 - sx(now)), height: ROW - 4, fill: "#bfe5cf" }));
    }
  });
}

async function refresh() {
  try {
    const since = Date.now() - 24 * 3600000;
    const [stats, jobs, nodes, users, hist] = await Promise.all([
      get("/api/v1/stats"), get("/api/v1/jobs?since=" + since), get("/api/v1/nodes"),
      get("/api/v1/users"), get("/api/v1/history"),
    ]);
    const now = jobs.now_ms;
    renderCards(stats);
    renderQueue(jobs.jobs, now, jobs.plan);
    renderRunning(jobs.jobs, now);
    renderNodes(nodes.nodes);
    renderUsers(users.users);
    renderHistory(hist);
    renderGantt(jobs.jobs, now);
    $("updated").textContent = "updated " + iso(now) + " UTC";
    $("error").hidden = true;
  } catch (e) {
    $("error").textContent = "cannot reach the scheduler: " + e.message;
    $("error").hidden = false;
  }
  setTimeout(refresh, REFRESH_MS);
}

refresh();
