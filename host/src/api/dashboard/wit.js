// A component's exported functions from its WIT world (as `cue inspect` prints it, and as its
// signed manifest carries it), and the call in WAVE from values typed in a form.

const INTEGER_RANGES = {
  u8: [0n, 255n], u16: [0n, 65535n], u32: [0n, 4294967295n], u64: [0n, 18446744073709551615n],
  s8: [-128n, 127n], s16: [-32768n, 32767n], s32: [-2147483648n, 2147483647n],
  s64: [-9223372036854775808n, 9223372036854775807n],
};

/** Splits `text` at the commas outside any `<…>` or `(…)`. */
function splitTop(text) {
  const parts = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "<" || c === "(") depth++;
    else if (c === ">" || c === ")") depth--;
    else if (c === "," && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts.map((p) => p.trim()).filter((p) => p);
}

/** The world's top-level exported functions: `[{name, params: [{name, type}], result}]`. */
export function exportedFunctions(world) {
  const found = [];
  const pattern = /^\s*export\s+([a-z][a-z0-9-]*)\s*:\s*func\s*\(([\s\S]*?)\)\s*(?:->\s*([^;]+))?;/gm;
  let match;
  while ((match = pattern.exec(world)) !== null) {
    const params = splitTop(match[2]).map((param) => {
      const colon = param.indexOf(":");
      return { name: param.slice(0, colon).trim(), type: param.slice(colon + 1).trim() };
    });
    if (match[1] === "init" && params.length === 0) continue;
    found.push({ name: match[1], params, result: match[3] ? match[3].trim() : null });
  }
  return found;
}

/** What kind of input a WIT type gets: `integer`, `float`, `bool`, `string`, `char` or `wave`. */
export function inputKind(type) {
  if (type in INTEGER_RANGES) return "integer";
  if (type === "f32" || type === "f64") return "float";
  if (type === "bool" || type === "string" || type === "char") return type;
  return "wave";
}

/** A string as a WAVE string literal. */
export function waveString(text, quote) {
  const q = quote || '"';
  let out = q;
  for (const ch of text) {
    const code = ch.codePointAt(0);
    if (ch === "\\") out += "\\\\";
    else if (ch === q) out += "\\" + q;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (code < 0x20 || code === 0x7f) out += `\\u{${code.toString(16)}}`;
    else out += ch;
  }
  return out + q;
}

/**
 * One argument as WAVE, from the text typed for a parameter of `type` (for a bool, "true" or
 * "false"). Throws an Error saying what is wrong, shown next to the field.
 */
export function waveValue(type, text) {
  const kind = inputKind(type);
  if (kind === "integer") {
    const trimmed = text.trim();
    if (!/^-?[0-9]+$/.test(trimmed)) throw new Error(`a whole number (${type})`);
    const value = BigInt(trimmed);
    const [low, high] = INTEGER_RANGES[type];
    if (value < low || value > high) throw new Error(`${type} goes from ${low} to ${high}`);
    return value.toString();
  }
  if (kind === "float") {
    const trimmed = text.trim();
    if (trimmed === "" || Number.isNaN(Number(trimmed))) throw new Error(`a number (${type})`);
    return String(Number(trimmed));
  }
  if (kind === "bool") return text === "true" ? "true" : "false";
  if (kind === "string") return waveString(text);
  if (kind === "char") {
    if ([...text].length !== 1) throw new Error("exactly one character");
    return waveString(text, "'");
  }
  if (!text.trim()) throw new Error(`a value of type ${type}, written in WAVE`);
  return text.trim();
}

/** The call `name(arg, …)` in WAVE. */
export function waveCall(name, args) {
  return `${name}(${args.join(", ")})`;
}
