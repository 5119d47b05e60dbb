// Provide: "Benchmark & become provider" runs the real benchmark (its runs as a progress bar),
// shows the signed manifest, and starts or stops providing with the policy in the form, all
// without restarting the node.

import { get, post, stream } from "./api.js";
import { el, fill, card, facts, num, bytes, time, short, problem } from "./html.js";

const FIELDS = [
  // [name, label, default, unit factor to the API's unit, hint]
  ["price_per_mfuel", "price per Mfuel", 1, 1, "CUE per million fuel"],
  ["base_fee", "base fee", 0, 1, "CUE per job"],
  ["max_concurrent_jobs", "max jobs at once", 2, 1, "jobs"],
  ["max_memory_bytes", "max memory per job", 512, 1024 * 1024, "MiB"],
  ["max_execution_ms", "max time per job", 30, 1000, "seconds"],
  ["min_reputation", "minimum consumer reputation", 0, 1, "0 to 1"],
];

function manifestFacts(manifest, hash, expires) {
  return facts([
    ["fuel per second", el("span", { id: "manifest-fuel" }, num(manifest.fuel_per_second))],
    ["cores", num(manifest.cores)],
    ["memory", bytes(manifest.memory_bytes)],
    ["engine fingerprint", el("code", {}, String(manifest.engine))],
    ["wasmtime", manifest.wasmtime],
    ["price per Mfuel", num(manifest.policy.price_per_mfuel)],
    ["base fee", num(manifest.policy.base_fee)],
    ["max jobs", num(manifest.policy.max_concurrent_jobs)],
    ["max memory", bytes(manifest.policy.max_memory_bytes)],
    ["max time", `${manifest.policy.max_execution_ms / 1000} s`],
    ["measured", time(manifest.measured_ms)],
    ["expires", expires ? time(expires) : "re-signed before it expires"],
    ["manifest hash", hash ? short(hash) : "—"],
  ]);
}

export async function render(root) {
  let status;
  try {
    status = await get("/v1/status");
  } catch (e) {
    fill(root, el("h1", {}, "Provide"), problem(e));
    return {};
  }
  const manifest = status.manifest;
  const inputs = {};
  const form = el("form", { class: "form", id: "policy" }, FIELDS.map(([name, label, fallback, factor, hint]) => {
    const current = manifest && name in manifest.policy ? manifest.policy[name] / factor : fallback;
    inputs[name] = el("input", { name, id: `policy-${name}`, type: "number", min: 0, step: name === "min_reputation" ? 0.05 : 1, value: current });
    return el("label", {}, el("span", {}, label), inputs[name], el("small", {}, hint), el("span", { class: "field-error", id: `policy-${name}-error` }));
  }));
  const progress = el("progress", { id: "benchmark-progress", max: 1, value: 0, hidden: true });
  const outcome = el("div", { id: "provide-outcome" }, manifest ? manifestFacts(manifest) : el("p", { class: "muted" }, "This node does not provide compute."));
  const start = el("button", { type: "submit", id: "become-provider" }, manifest ? "Benchmark again & apply the policy" : "Benchmark & become provider");
  const stop = el("button", { type: "button", id: "stop-providing", class: "secondary", disabled: !manifest }, "Stop providing");
  form.append(el("div", { class: "actions" }, start, stop), progress);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {};
    let bad = false;
    for (const [name, , , factor] of FIELDS) {
      const value = Number(inputs[name].value);
      const error = document.getElementById(`policy-${name}-error`);
      const ok = inputs[name].value !== "" && value >= 0 && (name === "min_reputation" ? value <= 1 : Number.isInteger(value));
      fill(error, ok ? "" : name === "min_reputation" ? "between 0 and 1" : "a whole number, 0 or more");
      bad = bad || !ok;
      body[name] = name === "min_reputation" ? value : value * factor;
    }
    if (bad) return;
    start.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    fill(outcome, el("p", { class: "muted" }, "Measuring this machine…"));
    try {
      const done = await stream("/v1/provide", body, (p) => {
        progress.max = p.total;
        progress.value = p.done;
      });
      fill(outcome, el("p", { class: "ok", id: "provide-ok" }, "Providing: the signed manifest is announced."), manifestFacts(done.manifest, done.hash, done.expires_ms));
      stop.disabled = false;
      start.textContent = "Benchmark again & apply the policy";
    } catch (e) {
      fill(outcome, problem(e));
    } finally {
      start.disabled = false;
    }
  });
  stop.addEventListener("click", async () => {
    try {
      await post("/v1/provide/stop");
      fill(outcome, el("p", { class: "muted", id: "provide-stopped" }, "Stopped: new requests are refused; contracts already made are served and paid."));
      stop.disabled = true;
      start.textContent = "Benchmark & become provider";
    } catch (e) {
      fill(outcome, problem(e));
    }
  });
  fill(root, el("h1", {}, "Provide"),
    el("div", { class: "grid" }, card("Policy", form), card("Signed manifest", outcome)));
  return {};
}
