// Submit: the origin's form — a JavaScript function, its arguments as a JSON array, an offer —
// run as a JavaScript job; or a call of any published component, from a form generated from its
// WIT parameter types (or typed in WAVE). Live progress and log, then the result, provider,
// fuel, cost, receipt and attempts. A bad field is shown next to it, never in an alert.

import { get, stream } from "./api.js";
import { el, fill, card, facts, num, short, problem, table } from "./html.js";
import { line } from "./log.js";
import { exportedFunctions, inputKind, waveValue, waveCall } from "./wit.js";

function labelled(label, input, id, hint) {
  return el("label", {}, el("span", {}, label), input, hint ? el("small", {}, hint) : null,
    el("span", { class: "field-error", id: `${id}-error` }));
}

function setError(id, message) {
  const node = document.getElementById(`${id}-error`);
  if (node) fill(node, message || "");
  return !message;
}

function options() {
  const inputs = {
    offer: el("input", { id: "offer", type: "number", min: 0, step: 1, value: 15 }),
    max_fuel: el("input", { id: "max-fuel", type: "number", min: 1, step: 1, placeholder: "from the offer and the price" }),
    replicas: el("input", { id: "replicas", type: "number", min: 1, max: 16, step: 1, value: 1 }),
    provider: el("input", { id: "provider", placeholder: "any (best score)", size: 56 }),
    memory: el("input", { id: "memory", type: "number", min: 1, step: 1, value: 64 }),
    timeout: el("input", { id: "timeout", type: "number", min: 1, step: 1, value: 5 }),
  };
  const box = el("fieldset", { class: "options" }, el("legend", {}, "Payment and limits"),
    labelled("payment offer", inputs.offer, "offer", "CUE"),
    labelled("max fuel", inputs.max_fuel, "max-fuel"),
    labelled("replicas", inputs.replicas, "replicas"),
    labelled("provider", inputs.provider, "provider", "peer id"),
    labelled("max memory", inputs.memory, "memory", "MiB"),
    labelled("time limit", inputs.timeout, "timeout", "seconds"));
  const read = () => {
    const whole = (id, input, min) => {
      const value = Number(input.value);
      const ok = input.value !== "" && Number.isInteger(value) && value >= min;
      setError(id, ok ? "" : `a whole number, ${min} or more`);
      return ok ? value : null;
    };
    const body = {};
    const offer = whole("offer", inputs.offer, 0);
    const replicas = whole("replicas", inputs.replicas, 1);
    const memory = whole("memory", inputs.memory, 1);
    const timeout = whole("timeout", inputs.timeout, 1);
    // No fuel limit: each provider gets the fuel the offer buys at its price.
    const fuel = inputs.max_fuel.value === "" ? undefined : whole("max-fuel", inputs.max_fuel, 1);
    if (inputs.max_fuel.value === "") setError("max-fuel", "");
    if ([offer, replicas, memory, timeout, fuel].includes(null)) return null;
    body.offer = offer;
    body.replicas = replicas;
    body.max_memory_bytes = memory * 1024 * 1024;
    body.timeout_ms = timeout * 1000;
    if (fuel !== undefined) body.max_fuel = fuel;
    if (inputs.provider.value.trim()) body.provider = inputs.provider.value.trim();
    return body;
  };
  return { box, read };
}

function javascriptForm() {
  const code = el("textarea", { id: "js-code", rows: 5, cols: 60, spellcheck: "false" }, "(a, b) => a * b");
  const args = el("input", { id: "js-args", value: "[5, 10]", size: 40, spellcheck: "false" });
  const box = el("div", {}, labelled("function code", code, "js-code"), labelled("arguments (a JSON array)", args, "js-args"));
  const read = () => {
    let ok = setError("js-code", code.value.trim() ? "" : "write a function, e.g. (a, b) => a * b");
    let parsed;
    try {
      parsed = JSON.parse(args.value);
      ok = setError("js-args", Array.isArray(parsed) ? "" : "the arguments must be a JSON array, e.g. [5, 10]") && ok;
    } catch (e) {
      ok = setError("js-args", `not JSON: ${e.message}`) && false;
    }
    return ok ? { js: code.value, args: args.value } : null;
  };
  return { box, read };
}

async function componentForm(preselected) {
  let components;
  try {
    components = await get("/v1/components");
  } catch (e) {
    return { box: problem(e), read: () => null };
  }
  if (!components.length) {
    return { box: el("p", { class: "muted" }, "No component is published yet (`cue publish`)."), read: () => null };
  }
  const picker = el("select", { id: "component" }, components.map((c, i) =>
    el("option", { value: i, selected: `${c.name}@${c.version}` === preselected }, `${c.name}@${c.version}`)));
  const exportPicker = el("select", { id: "export" });
  const params = el("div", { id: "params" });
  const raw = el("textarea", { id: "raw-call", rows: 2, cols: 60, spellcheck: "false", placeholder: 'fib(40), or {"function": "fib", "args": [40]}' });
  const useRaw = el("input", { type: "checkbox", id: "use-raw" });
  const rawBox = el("div", { hidden: true }, labelled("call (WAVE or JSON)", raw, "raw-call"));
  useRaw.addEventListener("change", () => {
    rawBox.hidden = !useRaw.checked;
    params.hidden = useRaw.checked;
  });
  let functions = [];
  const drawParams = () => {
    const fn = functions[Number(exportPicker.value)];
    fill(params, fn ? fn.params.map((p) => {
      const kind = inputKind(p.type);
      const id = `param-${p.name}`;
      const input = kind === "bool"
        ? el("select", { id }, el("option", { value: "false" }, "false"), el("option", { value: "true" }, "true"))
        : kind === "wave"
          ? el("textarea", { id, rows: 2, cols: 50, spellcheck: "false", placeholder: `${p.type} in WAVE` })
          : el("input", { id, type: kind === "integer" || kind === "float" ? "text" : "text", inputmode: kind === "integer" || kind === "float" ? "decimal" : null, size: 30 });
      return labelled(`${p.name}: ${p.type}`, input, id);
    }) : el("p", { class: "muted" }, "this component exports no function"));
  };
  const drawExports = () => {
    functions = exportedFunctions(components[Number(picker.value)].world);
    fill(exportPicker, functions.map((f, i) => el("option", { value: i }, `${f.name}(${f.params.map((p) => `${p.name}: ${p.type}`).join(", ")})${f.result ? " -> " + f.result : ""}`)));
    drawParams();
  };
  picker.addEventListener("change", drawExports);
  exportPicker.addEventListener("change", drawParams);
  drawExports();
  const box = el("div", {}, labelled("component", picker, "component"), labelled("export", exportPicker, "export"),
    params, el("label", { class: "inline" }, useRaw, " type the call in WAVE or JSON instead"), rawBox);
  const read = () => {
    const c = components[Number(picker.value)];
    const reference = `${c.name}@=${c.version}`;
    if (useRaw.checked) {
      return setError("raw-call", raw.value.trim() ? "" : "write the call, e.g. fib(40)") ? { reference, call: raw.value.trim() } : null;
    }
    const fn = functions[Number(exportPicker.value)];
    if (!fn) return null;
    let ok = true;
    const args = fn.params.map((p) => {
      try {
        const value = waveValue(p.type, document.getElementById(`param-${p.name}`).value);
        setError(`param-${p.name}`, "");
        return value;
      } catch (e) {
        ok = setError(`param-${p.name}`, e.message) && false;
        return null;
      }
    });
    return ok ? { reference, call: waveCall(fn.name, args) } : null;
  };
  return { box, read };
}

/**
 * Puts an error about the job's input next to the field it is about too (the JavaScript
 * arguments or code, the component's call), besides the Outcome panel.
 */
function placeInline(mode, error) {
  if (!error || !error.message) return;
  const about = (pattern) => pattern.test(error.message);
  if (mode === "js") {
    if (about(/\bargs\b|argument/i)) setError("js-args", error.message);
    else if (error.kind === "thrown" || error.kind === "syntax" || about(/syntax|not a function/i)) setError("js-code", error.message);
  } else if (error.kind === "bad-arguments" || about(/bad-arguments|invalid value|expected .*\(/i)) {
    const raw = document.getElementById("use-raw");
    const field = raw && raw.checked ? "raw-call" : (document.querySelector("#params [id^=param-]") || {}).id;
    if (field) setError(field, error.message);
  }
}

function report(done) {
  return el("div", { id: "result" },
    done.error
      ? el("p", { class: "error", id: "result-error" }, `${done.error.kind}: ${done.error.message}`)
      : el("p", { class: "result" }, "result ", el("output", { id: "result-value" }, JSON.stringify(done.result))),
    facts([
      ["provider", short(done.provider)],
      ["fuel", el("span", { id: "result-fuel" }, num(done.fuel))],
      ["cost", el("span", { id: "result-cost" }, `${num(done.cost)} CUE`)],
      ["receipt", done.receipt ? el("code", { id: "result-receipt" }, done.receipt) : "—"],
      ["job", el("a", { href: `#/jobs/${done.job}` }, short(done.job))],
      ["component", short(done.component)],
    ]),
    table([
      ["provider", (a) => short(a.provider)],
      ["outcome", (a) => a.outcome],
      ["detail", (a) => a.detail],
      ["paid", (a) => num(a.paid)],
    ], done.attempts || [], { class: "attempts", empty: "no attempt" }),
    done.log && done.log.length ? [
      el("h3", {}, "The job's own log (console.log, as the provider streamed it)"),
      el("div", { class: "log short", id: "result-log" }, done.log.map((entry) => el("div", { class: "logline" },
        el("span", { class: "level" }, typeof entry.source === "string" ? entry.source : Object.values(entry.source)[0]), " ",
        entry.text))),
    ] : null);
}

export async function render(root, ctx, rest) {
  const preselected = rest && rest[0] ? decodeURIComponent(rest[0]) : null;
  let mode = preselected ? "component" : "js";
  const js = javascriptForm();
  const component = await componentForm(preselected);
  const opts = options();
  const jsTab = el("button", { type: "button", id: "mode-js", class: "tab" }, "JavaScript function");
  const componentTab = el("button", { type: "button", id: "mode-component", class: "tab" }, "Published component");
  const modeBox = el("div", {});
  const drawMode = () => {
    jsTab.classList.toggle("active", mode === "js");
    componentTab.classList.toggle("active", mode === "component");
    fill(modeBox, mode === "js" ? js.box : component.box);
  };
  jsTab.addEventListener("click", () => { mode = "js"; drawMode(); });
  componentTab.addEventListener("click", () => { mode = "component"; drawMode(); });
  drawMode();
  const go = el("button", { type: "submit", id: "submit-job" }, "Submit");
  const progress = el("progress", { id: "job-progress", hidden: true });
  const outcome = el("div", { id: "submit-outcome" });
  const log = el("div", { class: "log short", id: "job-log" });
  const form = el("form", { class: "form", id: "submit-form" }, el("div", { class: "tabs" }, jsTab, componentTab), modeBox, opts.box,
    el("div", { class: "actions" }, go, progress));
  let following = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const job = mode === "js" ? js.read() : component.read();
    const limits = opts.read();
    if (!job || !limits) return;
    go.disabled = true;
    progress.hidden = false;
    progress.removeAttribute("value");
    fill(outcome, el("p", { class: "muted", id: "submit-running" }, "Finding a provider, negotiating, running…"));
    fill(log);
    following = true;
    try {
      const done = await stream("/v1/submit", { ...job, ...limits }, (p) => {
        if (p.total) {
          progress.max = p.total;
          progress.value = p.done;
        }
      });
      fill(outcome, report(done));
      placeInline(mode, done.error);
    } catch (e) {
      placeInline(mode, e);
      const candidates = e.detail && e.detail.candidates
        ? el("ul", { class: "plain" }, e.detail.candidates.map((c) => el("li", {}, short(c.provider), ": ", c.reason)))
        : null;
      fill(outcome, el("div", { id: "submit-error" }, problem(e), candidates));
    } finally {
      following = false;
      go.disabled = false;
      progress.hidden = true;
    }
  });
  fill(root, el("h1", {}, "Submit a compute job"),
    el("div", { class: "grid wide" }, card("Job", form), card("Outcome", outcome, el("h3", {}, "This node's log while it ran"), log)));
  return {
    onLog: (entry) => {
      if (following) log.append(line(entry));
    },
  };
}
