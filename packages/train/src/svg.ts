// Building blocks for the plots: SVG text escaping, axis ticks, colours, PNG rendering and atomic file writes.
//
// SVG is the source of every figure (a string we build, diffable and viewable anywhere); the PNG is rendered from it
// by resvg with an explicit font file, so the picture does not depend on which fonts a machine happens to have.

import { existsSync } from 'node:fs';
import { writeFile, rename, unlink, mkdir } from 'node:fs/promises';
import path from 'node:path';

/** The font the SVGs ask for; the PNG renderer is given this file explicitly. */
export const FONT_FAMILY = 'DejaVu Sans';

// Where DejaVu Sans lives on common systems (Debian/Ubuntu, Fedora, Arch, macOS with Homebrew fonts).
const FONT_DIRS = [
  '/usr/share/fonts/truetype/dejavu',
  '/usr/share/fonts/dejavu',
  '/usr/share/fonts/TTF',
  '/usr/local/share/fonts',
  '/Library/Fonts',
];

/** The DejaVu Sans regular and bold files, or null when none is installed. DAWNGRAD_FONT overrides. */
export function findFontFiles(): string[] | null {
  const env = process.env.DAWNGRAD_FONT;
  if (env) return existsSync(env) ? [env] : null;
  for (const dir of FONT_DIRS) {
    const regular = path.join(dir, 'DejaVuSans.ttf');
    if (!existsSync(regular)) continue;
    const bold = path.join(dir, 'DejaVuSans-Bold.ttf');
    return existsSync(bold) ? [regular, bold] : [regular];
  }
  return null;
}

/** Escapes text for SVG content and attribute values, dropping characters XML 1.0 forbids. */
export function esc(s: string): string {
  return s
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** A coordinate with at most 2 decimals (keeps the SVG small and stable). */
export function num(v: number): string {
  return String(Math.round(v * 100) / 100);
}

export interface TextOpts {
  size?: number;
  anchor?: 'start' | 'middle' | 'end';
  weight?: 'normal' | 'bold';
  fill?: string;
  /** Degrees, about (x, y). */
  rotate?: number;
  /** Vertical centring on y. */
  middle?: boolean;
}

/** One <text> element with escaped content. */
export function svgText(x: number, y: number, content: string, o: TextOpts = {}): string {
  const attrs = [`x="${num(x)}"`, `y="${num(y)}"`, `font-size="${o.size ?? 13}"`, `text-anchor="${o.anchor ?? 'start'}"`];
  if (o.weight === 'bold') attrs.push('font-weight="bold"');
  if (o.fill) attrs.push(`fill="${o.fill}"`);
  if (o.middle) attrs.push('dominant-baseline="central"');
  if (o.rotate) attrs.push(`transform="rotate(${o.rotate} ${num(x)} ${num(y)})"`);
  return `<text ${attrs.join(' ')}>${esc(content)}</text>`;
}

/** The opening of a standalone SVG document with a white background. */
export function svgOpen(width: number, height: number): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    `font-family="${FONT_FAMILY}, Verdana, sans-serif">\n<rect width="${width}" height="${height}" fill="#ffffff"/>`
  );
}

/** About `count` round tick values (steps of 1, 2 or 5 × 10^k) inside [min, max]. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) throw new Error(`niceTicks: range ${min}..${max} is not finite`);
  if (max < min) [min, max] = [max, min];
  if (max === min) return [min];
  const raw = (max - min) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  // The 1-2-5 step nearest to the raw step (thresholds at the geometric midpoints, as d3 does).
  const e = raw / mag;
  const step = mag * (e >= Math.sqrt(50) ? 10 : e >= Math.sqrt(10) ? 5 : e >= Math.sqrt(2) ? 2 : 1);
  const ticks: number[] = [];
  // Round to the step's precision so 0.1 + 0.2 prints as 0.3.
  const digits = Math.max(0, -Math.floor(Math.log10(step)) + 2);
  // Multiples k·step (not a running sum, which drifts).
  for (let k = Math.ceil(min / step - 1e-9); k <= Math.floor(max / step + 1e-9); k++) ticks.push(Number((k * step).toFixed(digits)));
  return ticks;
}

/** A tick label: integers plainly, large values as 12k / 1.5M, small ones with enough decimals. */
export function tickLabel(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`;
  if (a >= 1e4) return `${Number((v / 1e3).toPrecision(3))}k`;
  return String(Number(v.toPrecision(4)));
}

// ColorBrewer "Blues" (9 classes), light to dark: a sequential scale readable in greyscale.
const BLUES = ['#f7fbff', '#deebf7', '#c6dbef', '#9ecae1', '#6baed6', '#4292c6', '#2171b5', '#08519c', '#08306b'];

/** The colour for t in [0, 1] on the Blues scale (linear interpolation between its stops). */
export function blues(t: number): string {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (BLUES.length - 1);
  const i = Math.min(BLUES.length - 2, Math.floor(x));
  const f = x - i;
  const a = parseInt(BLUES[i].slice(1), 16);
  const b = parseInt(BLUES[i + 1].slice(1), 16);
  const ch = (shift: number) => Math.round(((a >> shift) & 255) * (1 - f) + ((b >> shift) & 255) * f);
  return `#${[16, 8, 0].map((s) => ch(s).toString(16).padStart(2, '0')).join('')}`;
}

export interface PngResult {
  /** The PNG bytes, or null when no renderer could be loaded. */
  png: Buffer | null;
  /** The font files used, or null when none was found (text then uses whatever system fonts resvg finds). */
  fonts: string[] | null;
  /** Why the PNG is missing or may look different (no font, no renderer); undefined when all went well. */
  warning?: string;
}

export interface PngOptions {
  /** Pixel scale over the SVG's size; default 2 (crisp on high-DPI screens). */
  scale?: number;
  /** Explicit font files (overrides the search). */
  fontFiles?: string[];
}

/** Renders an SVG string to PNG with resvg. Never throws for a missing font or renderer: it says so in `warning`. */
export async function svgToPng(svg: string, opts: PngOptions = {}): Promise<PngResult> {
  // Explicit files that do not exist are treated like no font at all (and reported).
  const given = opts.fontFiles?.filter((f) => existsSync(f));
  const fonts = given ? (given.length ? given : null) : findFontFiles();
  let Resvg: typeof import('@resvg/resvg-js').Resvg;
  try {
    ({ Resvg } = await import('@resvg/resvg-js'));
  } catch (e) {
    return { png: null, fonts, warning: `PNG skipped: @resvg/resvg-js could not be loaded (${(e as Error).message.split('\n')[0]})` };
  }
  const scale = opts.scale ?? 2;
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    font: fonts
      ? { fontFiles: fonts, loadSystemFonts: false, defaultFontFamily: FONT_FAMILY }
      : { loadSystemFonts: true },
  });
  const png = resvg.render().asPng();
  const warning = fonts ? undefined : `no ${FONT_FAMILY} font found (set DAWNGRAD_FONT to a .ttf); PNG text uses system fonts and may be missing`;
  return { png, fonts, warning };
}

/** Writes a file atomically: a temp file in the same directory, then rename, so readers never see half a file. */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  try {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(tmp, data);
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw new Error(`cannot write ${file}: ${(e as Error).message}`);
  }
}

export interface FigureFiles {
  svg: string;
  /** The PNG path, or null when it could not be rendered (see warning). */
  png: string | null;
  warning?: string;
}

/** Writes `<base>.svg` and `<base>.png` (a trailing .svg/.png on `base` is ignored). */
export async function writeFigure(base: string, svg: string, opts: PngOptions = {}): Promise<FigureFiles> {
  const stem = base.replace(/\.(svg|png)$/i, '');
  const svgPath = `${stem}.svg`;
  await writeFileAtomic(svgPath, svg);
  const { png, warning } = await svgToPng(svg, opts);
  if (!png) return { svg: svgPath, png: null, warning };
  const pngPath = `${stem}.png`;
  await writeFileAtomic(pngPath, png);
  return { svg: svgPath, png: pngPath, warning };
}
