// The dashboard: takes the token, follows the node's live feed, and shows one view at a time
// (`#/overview`, `#/jobs/<id>`, …). Each view module exports `render(root, ctx)` and may answer
// `{onState, onLog}` to hear the feed while it is shown.

import { takeToken, forgetToken, whenRefused, follow, get } from "./api.js";
import { el, fill, num, short } from "./html.js";
import * as overview from "./overview.js";
import * as market from "./market.js";
import * as jobs from "./jobs.js";
import * as wallet from "./wallet.js";
import * as log from "./log.js";
import * as provide from "./provide.js";
import * as submit from "./submit.js";

const VIEWS = { overview, market, jobs, wallet, log, provide, submit };
/** Log lines kept by the page for the Log and Submit views (the oldest dropped past this). */
const KEPT_LOG_LINES = 2000;

const ctx = {
  state: null,
  logLines: [],
  status: null,
  listeners: null,
  live: false,
  /** Ends the live feed (the token was refused). */
  stop: new AbortController(),
};

function notice(message, ...children) {
  const box = document.getElementById("notice");
  if (!message) {
    box.hidden = true;
    return;
  }
  fill(box, el("strong", {}, message), ...children);
  box.hidden = false;
}

function tokenMissing(wrong) {
  const why = wrong
    ? "This node refused the page's token (it is wrong, or the node made a new one)."
    : "This page has no token for the node.";
  notice(why, " Open the address `cue node` printed (dashboard: http://127.0.0.1:PORT/#token=…), or run ",
    el("code", {}, "cue ui"), " to print it again.");
  fill(document.getElementById("view"));
  document.body.classList.add("locked");
}

function drawSummary() {
  const state = ctx.state;
  const status = ctx.status;
  const summary = document.getElementById("summary");
  if (!status) return;
  fill(summary,
    short(status.peer_id),
    el("span", { id: "summary-balance", title: "balance" },
      state && state.balance !== null ? `${num(state.balance)} CUE` : ""),
    state && state.locked ? el("span", { class: "locked", title: "set aside for offers not yet settled" }, `+${num(state.locked)} locked`) : null,
    el("span", { id: "summary-peers" }, state ? `${num(state.peers)} peer${state.peers === 1 ? "" : "s"}` : ""),
    el("span", { class: state && state.providing ? "badge on" : "badge" }, state && state.providing ? "providing" : "not providing"),
    el("span", { id: "live", class: ctx.live ? "badge on" : "badge" }, ctx.live ? "live" : "offline"));
}

async function show() {
  const route = (location.hash.replace(/^#\/?/, "") || "overview").split("/");
  const name = VIEWS[route[0]] ? route[0] : "overview";
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.view === name);
  }
  const root = document.getElementById("view");
  root.dataset.view = name;
  fill(root, el("p", { class: "muted" }, "Loading…"));
  ctx.listeners = null;
  const shown = await VIEWS[name].render(root, ctx, route.slice(1));
  if (root.dataset.view === name) ctx.listeners = shown || null;
}

function onEvent(name, data) {
  if (name === "log") {
    ctx.logLines.push(data);
    if (ctx.logLines.length > KEPT_LOG_LINES) ctx.logLines.splice(0, ctx.logLines.length - KEPT_LOG_LINES);
    if (ctx.listeners && ctx.listeners.onLog) ctx.listeners.onLog(data);
  } else if (name === "log-gap") {
    const gap = { ms: Date.now(), level: "WARN", target: "dashboard", message: `${data.skipped} log lines skipped (the page read too slowly)` };
    onEvent("log", gap);
  } else if (name === "state") {
    ctx.state = data;
    drawSummary();
    if (ctx.listeners && ctx.listeners.onState) ctx.listeners.onState(data);
  }
}

async function start() {
  if (!takeToken()) {
    tokenMissing(false);
    return;
  }
  let refused = false;
  whenRefused(() => {
    refused = true;
    ctx.stop.abort();
    forgetToken();
    tokenMissing(true);
  });
  try {
    ctx.status = await get("/v1/status");
  } catch (e) {
    if (!refused) notice("The node does not answer: " + e.message);
    return;
  }
  drawSummary();
  follow(onEvent, (live) => {
    ctx.live = live;
    drawSummary();
  }, ctx.stop.signal);
  await show();
}

// A new token in the address (the page is open, and `cue ui`'s address is pasted): take it and
// start again with it. Otherwise a new `#/view`.
window.addEventListener("hashchange", () => {
  if (/token=/.test(location.hash)) {
    takeToken();
    location.reload();
  } else if (!document.body.classList.contains("locked")) {
    show();
  }
});

start();
