// What the docs tests read from the markdown: the fenced code blocks (with
// the `<!-- run: ... -->` marker before a block), the relative links, and the
// anchors of the headings. Plain string work, no markdown library.
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository's root, with a trailing separator. */
export const root: string = fileURLToPath(new URL("../../", import.meta.url));

export type RuntimeName = "node" | "deno" | "bun";
export const RUNTIMES: readonly RuntimeName[] = ["node", "deno", "bun"];

/** A `<!-- run: SCENARIO [runtime...] -->` marker: run the block on those runtimes (all when none is named). */
export interface RunMarker {
  scenario: string;
  runtimes: readonly RuntimeName[];
}

/** One fenced code block. */
export interface Block {
  /** The markdown file, relative to the root (`docs/guides/apps.md`). */
  file: string;
  /** 1-based line of the block's first code line (the one after the fence). */
  line: number;
  /** The info string's first word (`ts`, `js`, `sh`…). */
  lang: string;
  code: string;
  run: RunMarker | undefined;
}

/** README.md and every `.md` under docs/, sorted, relative to the root. */
export function markdownFiles(): string[] {
  const files = ["README.md"];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(".md")) files.push(path.split("\\").join("/"));
    }
  };
  walk("docs");
  return files.sort();
}

const RUN = /^<!--\s*run:\s*(.*?)\s*-->$/;

/** Parses a run marker's text (`rooms-isolation node deno`); throws on an unknown runtime. */
export function parseRunMarker(text: string, where: string): RunMarker {
  const [scenario, ...names] = text.split(/\s+/).filter((w) => w !== "");
  if (scenario === undefined) throw new Error(`${where}: a run marker without a scenario`);
  for (const name of names) {
    if (!(RUNTIMES as readonly string[]).includes(name)) {
      throw new Error(`${where}: unknown runtime ${JSON.stringify(name)} in a run marker (node, deno or bun)`);
    }
  }
  return { scenario, runtimes: names.length === 0 ? RUNTIMES : (names as RuntimeName[]) };
}

/** The fenced blocks of one markdown text. A run marker must be on the line right before its fence. */
export function blocksOf(file: string, text: string): Block[] {
  const lines = text.split("\n");
  const blocks: Block[] = [];
  let marker: RunMarker | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const fence = /^(`{3,}|~{3,})\s*([^\s`]*)/.exec(line);
    if (fence === null) {
      const run = RUN.exec(line.trim());
      if (run !== null) {
        if (marker !== undefined) throw new Error(`${file}:${i + 1}: two run markers in a row`);
        marker = parseRunMarker(run[1]!, `${file}:${i + 1}`);
      } else if (marker !== undefined && line.trim() !== "") {
        throw new Error(`${file}:${i}: a run marker must be right before a code block`);
      }
      continue;
    }
    const close = fence[1]!;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !lines[end]!.startsWith(close)) end++;
    if (end === lines.length) throw new Error(`${file}:${i + 1}: a code block that never closes`);
    blocks.push({ file, line: start + 1, lang: fence[2]!.toLowerCase(), code: lines.slice(start, end).join("\n") + "\n", run: marker });
    marker = undefined;
    i = end;
  }
  if (marker !== undefined) throw new Error(`${file}: a run marker at the end, without a code block`);
  return blocks;
}

/** Every block of README.md and docs/. */
export function allBlocks(): Block[] {
  return markdownFiles().flatMap((file) => blocksOf(file, readFileSync(join(root, file), "utf8")));
}

/** The TypeScript blocks (` ```ts ` and ` ```typescript `). */
export function tsBlocks(): Block[] {
  return allBlocks().filter((b) => b.lang === "ts" || b.lang === "typescript");
}

/** The text outside code blocks and inline code, where links live. */
function prose(text: string): string {
  const lines = text.split("\n");
  const out: string[] = [];
  let fence: string | undefined;
  for (const line of lines) {
    const open = /^(`{3,}|~{3,})/.exec(line);
    if (fence === undefined && open !== null) {
      fence = open[1];
      out.push("");
    } else if (fence !== undefined) {
      if (line.startsWith(fence)) fence = undefined;
      out.push("");
    } else {
      out.push(line.replace(/`[^`]*`/g, (m) => " ".repeat(m.length)));
    }
  }
  return out.join("\n");
}

/** A relative link: its target as written, and where it is. */
export interface Link {
  file: string;
  line: number;
  target: string;
}

/** The links of one markdown text that are not absolute URLs (`http:`, `mailto:`…). */
export function relativeLinks(file: string, text: string): Link[] {
  const links: Link[] = [];
  prose(text).split("\n").forEach((line, i) => {
    for (const m of line.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      const target = m[1]!;
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue;
      links.push({ file, line: i + 1, target });
    }
  });
  return links;
}

/** The anchors of a text's headings, as GitHub makes them: lower case, punctuation dropped, spaces to dashes; repeats get `-1`, `-2`. */
export function headingAnchors(text: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let fence: string | undefined;
  for (const line of text.split("\n")) {
    const open = /^(`{3,}|~{3,})/.exec(line);
    if (fence === undefined && open !== null) {
      fence = open[1];
      continue;
    }
    if (fence !== undefined) {
      if (line.startsWith(fence)) fence = undefined;
      continue;
    }
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading !== null) anchors.add(slug(heading[1]!, seen));
  }
  return anchors;
}

function slug(heading: string, seen: Map<string, number>): string {
  const base = heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1") // a link's text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
  const n = seen.get(base) ?? 0;
  seen.set(base, n + 1);
  return n === 0 ? base : `${base}-${n}`;
}

/** A path relative to the root, for messages. */
export function fromRoot(path: string): string {
  return relative(root, path).split("\\").join("/");
}
