// The Spider-py dashboard: three views drawn from the JSON API (spider/dashboard/_pages.py).
//   #/          the cluster: storage, EMs, queues, jobs by state, throughput plot
//   #/jobs      the job catalog, filtered by state and resource group
//   #/jobs/ID   one job: its task graph coloured by state, failed tasks' errors
// Every value from the API is put in the page as text (never as HTML): task errors are
// whatever a task raised.
"use strict";

const REFRESH_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";
const JOB_STATES = ["Ready", "Running", "CommitReady", "CleanupReady", "Succeeded", "Failed",
  "Cancelled"];
const TASK_STATES = ["Pending", "Ready", "Running", "Succeeded", "Failed", "Cancelled",
  "Unknown"];

let timer = null;
let selectedTask = null;

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  return fill(node, attrs, children);
}

function s(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  return fill(node, attrs, children);
}

function fill(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function colour(state) {
  return `var(--${(state || "unknown").toLowerCase()})`;
}

function badge(state) {
  return h("span", { class: "badge", style: `background:${colour(state)}` }, state);
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleTimeString() : "";
}

function took(start, end) {
  return start && end ? `${(end - start).toFixed(3)} s` : "";
}

async function api(path) {
  const reply = await fetch(path, { cache: "no-store" });
  const body = await reply.json();
  if (!reply.ok) throw new Error(body.error || `${reply.status} ${reply.statusText}`);
  return body;
}

function show(...nodes) {
  const view = document.getElementById("view");
  view.replaceChildren(...nodes.filter((node) => node !== null && node !== undefined));
}

function problem(error) {
  return h("p", { class: "problem", id: "problem" }, String(error.message || error));
}

// --- the cluster ---------------------------------------------------------------------------

async function clusterView() {
  const overview = await api("/api/overview");
  document.getElementById("storage").textContent = `storage ${overview.storage}`;
  const status = overview.status;
  const parts = [h("h1", {}, "Cluster")];
  if (overview.problem) parts.push(problem({ message: overview.problem }));
  if (!status) {
    show(...parts);
    return;
  }
  parts.push(throughputChart(overview.throughput));
  const cards = h("section", { class: "cards" });
  cards.append(h("div", {}, h("h2", {}, "Storage"),
    h("div", {}, `session ${status.session_id}, ${status.round_trip_ms} ms`),
    status.database ? h("div", {}, status.database.writable ? "database writable"
      : `database NOT writable: ${status.database.problem}`) : null,
    h("div", {}, `live task instances: ${status.live_task_instances ?? "?"}`)));
  const schedulers = status.schedulers === null ? ["not reported by this storage"]
    : status.schedulers.map((one) => `${one.host}:${one.port} (id ${one.id})`);
  cards.append(h("div", {}, h("h2", {}, "Scheduler"),
    ...(schedulers.length ? schedulers : ["none registered"]).map((line) => h("div", {}, line))));
  if (status.queues) {
    cards.append(h("div", {}, h("h2", {}, "Ready queues"), table(["lane", "depth", "capacity"],
      Object.entries(status.queues).map(([lane, queue]) => [lane, num(queue.depth),
        num(queue.capacity)]))));
  }
  if (status.jobs) {
    cards.append(h("div", {}, h("h2", {}, "Jobs by state"), table(["state", "cached", "stored"],
      JOB_STATES.filter((state) => status.jobs.cached[state] || status.jobs.stored[state])
        .map((state) => [h("a", { href: `#/jobs?state=${state}` }, badge(state)),
          num(status.jobs.cached[state] || 0), num(status.jobs.stored[state] || 0)]))));
  }
  parts.push(cards);
  if (status.execution_managers) {
    parts.push(h("h2", {}, `Execution managers (${status.execution_managers.alive} alive, `
      + `${status.execution_managers.dead} dead)`));
    parts.push(table(["id", "address", "state", "last heartbeat", "running"],
      status.execution_managers.listed.map((em) => [num(em.id), em.ip_address,
        em.alive ? "alive" : "dead", `${em.seconds_since_heartbeat.toFixed(1)} s ago`,
        num(em.running_task_instances)])));
  }
  show(...parts);
}

function throughputChart(throughput) {
  const width = 720;
  const height = 160;
  const pad = 36;
  const points = throughput.points;
  const now = Date.now() / 1000;
  const top = Math.max(1, ...points.map(([, rate]) => rate));
  const x = (at) => pad + (width - 2 * pad) * (1 - (now - at) / throughput.window_sec);
  const y = (rate) => height - pad / 2 - (height - pad) * (rate / top);
  const last = points.length ? points[points.length - 1][1] : 0;
  return h("div", {},
    h("h2", {}, `Throughput: ${last.toFixed(1)} tasks/s now, the last `
      + `${Math.round(throughput.window_sec / 60)} minutes`),
    s("svg", { class: "chart", id: "throughput", width, height,
      "data-points": points.length },
      s("line", { x1: pad, x2: width - pad, y1: y(0), y2: y(0), stroke: "#ddd" }),
      s("text", { x: 2, y: y(top) + 4 }, top.toFixed(top < 10 ? 1 : 0)),
      s("text", { x: 2, y: y(0) + 4 }, "0"),
      s("text", { x: pad, y: height - 2 }, `-${Math.round(throughput.window_sec / 60)} min`),
      s("text", { x: width - pad - 20, y: height - 2 }, "now"),
      s("polyline", { points: points.map(([at, rate]) => `${x(at)},${y(rate)}`).join(" ") })));
}

function num(value) {
  return h("span", { class: "num" }, value);
}

function table(headings, rows) {
  return h("table", {},
    h("thead", {}, h("tr", {}, headings.map((text) => h("th", {}, text)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, row.map((cell) => h("td",
      cell instanceof Node && cell.classList && cell.classList.contains("num")
        ? { class: "num" } : {}, cell))))));
}

// --- the job list --------------------------------------------------------------------------

async function jobsView(params) {
  const query = new URLSearchParams();
  for (const state of params.getAll("state")) query.append("state", state);
  if (params.get("group")) query.set("group", params.get("group"));
  query.set("limit", params.get("limit") || "100");
  const form = h("form", { class: "filters", onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    const next = new URLSearchParams();
    if (data.get("state")) next.set("state", data.get("state"));
    if (data.get("group")) next.set("group", data.get("group"));
    location.hash = `#/jobs?${next}`;
  } },
  h("label", {}, "state", h("select", { name: "state" }, h("option", { value: "" }, "any"),
    JOB_STATES.map((state) => h("option", state === params.get("state")
      ? { value: state, selected: "" } : { value: state }, state)))),
  h("label", {}, "resource group", h("input", { name: "group", size: 6,
    value: params.get("group") || "" })),
  h("button", { type: "submit" }, "Filter"));
  let listing;
  try {
    listing = await api(`/api/jobs?${query}`);
  } catch (error) {
    show(h("h1", {}, "Jobs"), form, problem(error));
    return;
  }
  const rows = listing.jobs.map((job) => [
    h("a", { href: `#/jobs/${job.job_id}` }, String(job.job_id)),
    badge(job.state), num(job.resource_group_id),
    new Date(job.created_at * 1000).toLocaleString(),
    job.ended_at ? `${(job.ended_at - job.created_at).toFixed(2)} s` : "",
    job.error]);
  show(h("h1", {}, "Jobs"), form,
    rows.length ? table(["job", "state", "group", "registered", "took", "error"], rows)
      : h("p", { class: "muted" }, "no job matches"),
    listing.next_page_token ? h("p", { class: "muted" }, "newest first; older jobs not shown")
      : null);
}

// --- one job -------------------------------------------------------------------------------

async function jobView(jobId) {
  let job;
  try {
    job = await api(`/api/jobs/${jobId}`);
  } catch (error) {
    show(h("h1", {}, `Job ${jobId}`), problem(error));
    return;
  }
  const counts = {};
  for (const task of job.tasks) counts[task.state] = (counts[task.state] || 0) + 1;
  const failed = job.tasks.filter((task) => task.error);
  const byName = new Map(job.tasks.map((task) => [task.task, task]));
  const parts = [
    h("h1", {}, `Job ${job.job_id} `, h("span", { id: "job-state", "data-state": job.state },
      badge(job.state))),
    h("p", { class: "legend" }, `${job.task_count} task(s): `,
      TASK_STATES.filter((state) => counts[state]).map((state) => h("span", {},
        h("i", { style: `background:${colour(state)}` }), `${counts[state]} ${state}`))),
    job.complete ? null : h("p", { class: "muted" },
      `showing the first ${job.tasks.length} of ${job.task_count} tasks`),
    taskGraph(job.tasks),
    h("div", { id: "task-detail" }, selectedTask && byName.has(selectedTask)
      ? taskDetail(byName.get(selectedTask)) : h("p", { class: "muted" },
        "click a task for its details")),
  ];
  if (job.error) {
    parts.push(h("h2", {}, "The job's error"), h("pre", { id: "job-error" }, job.error));
  }
  if (failed.length) {
    parts.push(h("h2", {}, "Tasks with errors"), table(["task", "function", "state",
      "instances", "last error"], failed.map((task) => [task.task, task.function,
      badge(task.state), num(task.instances),
      h("span", { class: "task-error", "data-task": task.task }, task.error)])));
  }
  show(...parts);
  endedJobShown = ENDED.has(job.state);
}

function taskDetail(task) {
  return table(["task", "function", "state", "instances", "running", "started", "took",
    "parents", "last error"], [[task.task, task.function, badge(task.state),
    num(task.instances), num(task.running), when(task.started_at),
    took(task.started_at, task.ended_at), task.parents.join(", "), task.error]]);
}

// Layers by longest path from the input tasks; commit and cleanup after the last layer.
function layout(tasks) {
  const layer = new Map();
  let deepest = 0;
  for (const task of tasks) {
    if (task.task === "commit" || task.task === "cleanup") continue;
    const depth = Math.max(-1, ...task.parents.map((parent) => layer.get(String(parent)) ?? 0))
      + 1;
    layer.set(task.task, depth);
    deepest = Math.max(deepest, depth);
  }
  for (const task of tasks) {
    if (!layer.has(task.task)) layer.set(task.task, deepest + 1);
  }
  const rows = new Map();
  const position = new Map();
  for (const task of tasks) {
    const column = layer.get(task.task);
    const row = rows.get(column) || 0;
    rows.set(column, row + 1);
    position.set(task.task, [column, row]);
  }
  return { position, columns: Math.max(...layer.values()) + 1,
    rows: Math.max(...rows.values()) };
}

function taskGraph(tasks) {
  if (!tasks.length) return h("p", { class: "muted" }, "no tasks");
  const nodeWidth = 120;
  const nodeHeight = 22;
  const across = 170;
  const down = 30;
  const { position, columns, rows } = layout(tasks);
  const at = (name) => {
    const [column, row] = position.get(name);
    return [12 + column * across, 12 + row * down];
  };
  const svg = s("svg", { class: "graph", id: "task-graph", width: 24 + columns * across,
    height: 24 + rows * down });
  for (const task of tasks) {
    for (const parent of task.parents) {
      if (!position.has(String(parent))) continue;
      const [x1, y1] = at(String(parent));
      const [x2, y2] = at(task.task);
      const [sx, sy, ex, ey] = [x1 + nodeWidth, y1 + nodeHeight / 2, x2, y2 + nodeHeight / 2];
      const bend = (ex - sx) / 2;
      svg.append(s("path", { class: "edge", "data-from": parent, "data-to": task.task,
        d: `M${sx},${sy} C${sx + bend},${sy} ${ex - bend},${ey} ${ex},${ey}` }));
    }
  }
  for (const task of tasks) {
    const [x, y] = at(task.task);
    const label = `${task.task} ${task.function.split("::").pop()}`;
    svg.append(s("g", { class: "task", "data-task": task.task, "data-state": task.state,
      onclick: () => { selectedTask = task.task; render(); } },
      s("title", {}, `${task.task} ${task.function}: ${task.state}`
        + (task.error ? `\n${task.error}` : "")),
      s("rect", { x, y, width: nodeWidth, height: nodeHeight, rx: 4,
        fill: colour(task.state), stroke: task.task === selectedTask ? "#000" : "none" }),
      s("text", { x: x + 6, y: y + 15 }, label.length > 18 ? `${label.slice(0, 17)}…` : label)));
  }
  return h("div", { style: "overflow:auto" }, svg);
}

// --- routing -------------------------------------------------------------------------------

async function render() {
  const label = document.getElementById("storage");
  if (!label.textContent) {
    label.textContent = `storage ${(await api("/api/overview").catch(() => ({}))).storage || "?"}`;
  }
  const [path, search] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(search || "");
  const match = path.match(/^\/jobs\/(\d+)$/);
  endedJobShown = false;
  try {
    if (match) await jobView(match[1]);
    else if (path === "/jobs") await jobsView(params);
    else await clusterView();
  } catch (error) {
    show(problem(error));
  }
  document.body.dataset.rendered = String(Number(document.body.dataset.rendered || 0) + 1);
}

// A job that has ended does not change: its page is drawn once, not every 2 seconds (reading a
// big ended job's tasks is the dashboard's most expensive call).
const ENDED = new Set(["Succeeded", "Failed", "Cancelled"]);
let endedJobShown = false;

async function refresh() {
  clearTimeout(timer);
  await render();
  if (!endedJobShown) timer = setTimeout(refresh, REFRESH_MS);
}

window.addEventListener("hashchange", () => { selectedTask = null; refresh(); });
refresh();
