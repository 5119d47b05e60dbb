// Log: the node's live log, with a level filter.

import { el, fill } from "./html.js";

const LEVELS = ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"];
/** Lines drawn at most; older ones leave the page. */
const SHOWN = 1000;

export function line(entry) {
  return el("div", { class: "logline " + entry.level.toLowerCase() },
    el("time", {}, new Date(entry.ms).toLocaleTimeString()), " ",
    el("span", { class: "level" }, entry.level), " ",
    el("span", { class: "target" }, entry.target.replace(/^cue_host::/, "")), " ",
    entry.message);
}

export async function render(root, ctx) {
  const level = el("select", { id: "log-level" }, LEVELS.map((l) => el("option", { value: l, selected: l === "INFO" }, l)));
  const lines = el("div", { class: "log", id: "log-lines" });
  const shown = (entry) => LEVELS.indexOf(entry.level) <= LEVELS.indexOf(level.value);
  const redraw = () => fill(lines, ctx.logLines.filter(shown).slice(-SHOWN).map(line));
  level.addEventListener("change", redraw);
  fill(root, el("h1", {}, "Log"), el("label", { class: "inline" }, "level at most ", level), lines);
  redraw();
  return {
    onLog: (entry) => {
      if (!shown(entry)) return;
      const atBottom = lines.scrollTop + lines.clientHeight >= lines.scrollHeight - 4;
      lines.append(line(entry));
      while (lines.childElementCount > SHOWN) lines.firstElementChild.remove();
      if (atBottom) lines.scrollTop = lines.scrollHeight;
    },
  };
}
