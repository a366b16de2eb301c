import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { mkdtempSync, rmSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  confusionMatrixSvg, lossCurveSvg, emaSmooth, writeConfusionMatrixPlot, writeLossCurvePlot,
} from '../src/plots.ts';
import { esc, niceTicks, svgToPng, writeFileAtomic, findFontFiles, blues } from '../src/svg.ts';
import { confusionFromCounts, confusionMatrix } from '../src/metrics.ts';

let tmp: string;
beforeAll(() => { tmp = mkdtempSync(path.join(tmpdir(), 'dawngrad-plots-')); });
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/**
 * A small XML well-formedness check: balanced, properly nested tags; quoted, unique attributes; only the five
 * predefined entities or numeric references; no bare '<' or '&' in text. Returns the element names in order.
 */
function checkXml(xml: string): string[] {
  const names: string[] = [];
  const stack: string[] = [];
  const entity = /&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/y;
  const checkText = (t: string) => {
    for (let i = 0; i < t.length; i++) {
      if (t[i] === '<') throw new Error(`bare '<' in text near ${JSON.stringify(t.slice(i, i + 20))}`);
      if (t[i] === '&') { entity.lastIndex = i; if (!entity.test(t)) throw new Error(`bad entity near ${JSON.stringify(t.slice(i, i + 12))}`); }
    }
  };
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)>/y;
  let i = 0;
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    checkText(lt < 0 ? xml.slice(i) : xml.slice(i, lt));
    if (lt < 0) break;
    tag.lastIndex = lt;
    const m = tag.exec(xml);
    if (!m) throw new Error(`malformed tag at ${lt}: ${JSON.stringify(xml.slice(lt, lt + 40))}`);
    const [, close, name, attrs, selfClose] = m;
    const keys = [...attrs.matchAll(/([\w:-]+)\s*=/g)].map((a) => a[1]);
    if (new Set(keys).size !== keys.length) throw new Error(`duplicate attribute in <${name}>`);
    for (const v of attrs.matchAll(/=\s*"([^"]*)"/g)) checkText(v[1]);
    if (close) {
      if (stack.pop() !== name) throw new Error(`</${name}> closes the wrong element`);
    } else {
      names.push(name);
      if (!selfClose) stack.push(name);
    }
    i = tag.lastIndex;
  }
  if (stack.length) throw new Error(`unclosed <${stack.join('>, <')}>`);
  if (names[0] !== 'svg') throw new Error('root element is not <svg>');
  return names;
}

/** Width and height from a PNG's IHDR chunk (bytes 16..24, big-endian), after checking the 8-byte signature. */
function pngSize(png: Uint8Array): { width: number; height: number } {
  expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  expect(Buffer.from(png.subarray(12, 16)).toString('ascii')).toBe('IHDR');
  const dv = new DataView(png.buffer, png.byteOffset, png.byteLength);
  return { width: dv.getUint32(16), height: dv.getUint32(20) };
}

function svgSize(svg: string): { width: number; height: number } {
  const m = /<svg[^>]*\swidth="(\d+)"[^>]*\sheight="(\d+)"/.exec(svg)!;
  return { width: Number(m[1]), height: Number(m[2]) };
}

/** The text content of every <text> element, unescaped. */
function texts(svg: string): string[] {
  const un = (s: string) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
  return [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => un(m[1]));
}

// The Hugging Face reference run (shared/models/tweet-mistral-tiny/README.md): macro-F1 0.527.
const HF = [[1308, 1954, 710], [698, 4114, 1125], [152, 781, 1442]];

describe('the XML checker itself', () => {
  it('rejects what it should', () => {
    expect(() => checkXml('<svg><g></svg>')).toThrow();
    expect(() => checkXml('<svg><text>a < b</text></svg>')).toThrow(/bare|malformed/);
    expect(() => checkXml('<svg><text>AT&T</text></svg>')).toThrow(/entity/);
    expect(() => checkXml('<svg a="1" a="2"/>')).toThrow(/duplicate/);
    expect(() => checkXml('<svg x=1/>')).toThrow(/malformed/);
    expect(checkXml('<svg><text a="&amp;">x &lt; y</text><rect/></svg>')).toEqual(['svg', 'text', 'rect']);
  });
});

describe('confusion matrix figure', () => {
  it('is well-formed SVG with axis titles, class names, every count, row % and macro-F1 in the title', () => {
    const svg = confusionMatrixSvg(confusionFromCounts(HF));
    checkXml(svg);
    const t = texts(svg);
    expect(t).toContain('true');
    expect(t).toContain('predicted');
    for (const name of ['negative', 'neutral', 'positive']) expect(t.filter((x) => x === name).length).toBe(4); // rows + cols, 2 panels
    for (const v of HF.flat()) expect(t).toContain(String(v));
    expect(t).toContain(`${((100 * 1308) / 3972).toFixed(1)}%`); // 1308 of the 3972 true negatives
    expect(t).toContain(`${((100 * 4114) / 5937).toFixed(1)}%`);
    expect(t.some((x) => x.includes('macro-F1 0.527'))).toBe(true);
    expect(t).not.toContain('invalid'); // no invalid predictions, no column
  });

  it('adds the invalid column when predictions were invalid, and escapes the title', () => {
    const cm = confusionMatrix([0, 0, 1, 2], [0, -1, 1, -1]);
    const svg = confusionMatrixSvg(cm, { title: 'run <A&B> "quoted"' });
    checkXml(svg);
    expect(svg).toContain('run &lt;A&amp;B&gt; &quot;quoted&quot;');
    const t = texts(svg);
    expect(t.filter((x) => x === 'invalid').length).toBe(2);
    expect(t).toContain('50.0%'); // one of the two true negatives was invalid
    expect(t.some((x) => x.includes('invalid answers 2'))).toBe(true);
  });
});

describe('loss curve figure', () => {
  const steps = Array.from({ length: 60 }, (_, i) => i + 1);
  const losses = steps.map((s) => 2 / Math.sqrt(s) + 0.1 * Math.sin(s));

  it('is well-formed SVG with labelled axes, title, smoothed line and validation points', () => {
    const svg = lossCurveSvg({ steps, losses }, { title: 'LoRA r=8 & lr<1e-3', validation: { steps: [20, 40, 60], losses: [0.7, 0.5, 0.4] } });
    const names = checkXml(svg);
    const t = texts(svg);
    expect(t).toContain('step');
    expect(t).toContain('loss');
    expect(t).toContain('LoRA r=8 & lr<1e-3');
    expect(t).toContain('validation');
    expect(t.some((x) => x.startsWith('train, smoothed'))).toBe(true);
    expect(names.filter((n) => n === 'circle').length).toBe(3 + 1); // 3 points + the legend marker
    expect(names.filter((n) => n === 'path').length).toBe(3); // raw, smoothed, validation
  });

  it('skips non-finite losses, and rejects mismatched or empty series', () => {
    const svg = lossCurveSvg({ steps: [1, 2, 3, 4], losses: [1, NaN, Infinity, 0.5] }, { smoothing: 0 });
    checkXml(svg);
    const d = /<path d="([^"]+)"/.exec(svg)![1];
    expect(d.match(/M/g)!.length).toBe(2); // the line restarts after the gap
    expect(svg).not.toMatch(/NaN|Infinity/);
    expect(() => lossCurveSvg({ steps: [1, 2], losses: [1] })).toThrow(/2 steps but 1 losses/);
    expect(() => lossCurveSvg({ steps: [1], losses: [NaN] })).toThrow(/no finite/);
    expect(() => lossCurveSvg({ steps: [1], losses: [1] }, { smoothing: 1 })).toThrow(/smoothing weight/);
  });

  it('emaSmooth equals the bias-corrected weighted mean Σ w^(n-i) x_i / Σ w^(n-i)', () => {
    // Hand case, w = 0.5: [2, 4] -> 2, (0.5·2 + 4) / 1.5 = 10/3
    const [a, b] = emaSmooth([2, 4], 0.5);
    expect(a).toBeCloseTo(2, 12);
    expect(b).toBeCloseTo(10 / 3, 12);
    fc.assert(fc.property(fc.array(fc.double({ min: -10, max: 10, noNaN: true }), { minLength: 1, maxLength: 30 }), fc.double({ min: 0, max: 0.99, noNaN: true }), (xs, w) => {
      const s = emaSmooth(xs, w);
      xs.forEach((_, n) => {
        let num = 0, den = 0;
        for (let i = 0; i <= n; i++) { num += w ** (n - i) * xs[i]; den += w ** (n - i); }
        expect(s[n]).toBeCloseTo(num / den, 8);
      });
    }));
  });
});

describe('svg helpers', () => {
  it('esc escapes markup and drops XML-forbidden control characters', () => {
    expect(esc(`<a href="x">&'\u0001`)).toBe('&lt;a href=&quot;x&quot;&gt;&amp;&apos;');
  });

  it('niceTicks are round, evenly spaced and inside the range', () => {
    expect(niceTicks(0, 10, 5)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(niceTicks(0.3, 0.95, 6)).toEqual([0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]);
    fc.assert(fc.property(fc.double({ min: -1e6, max: 1e6, noNaN: true }), fc.double({ min: 1e-6, max: 1e6, noNaN: true }), (lo, span) => {
      fc.pre(span >= 1e-6 * Math.abs(lo)); // ranges far below float precision of their magnitude are not plots
      const ticks = niceTicks(lo, lo + span, 6);
      expect(ticks.length).toBeGreaterThanOrEqual(2);
      expect(ticks.length).toBeLessThanOrEqual(13);
      const step = ticks[1] - ticks[0];
      const mant = step / 10 ** Math.floor(Math.log10(step) + 1e-9);
      expect([1, 2, 5, 10].some((m) => Math.abs(mant - m) < 1e-3)).toBe(true); // loose: tick values are rounded; 10 = 9.99… of the next decade
      for (const v of ticks) {
        expect(v).toBeGreaterThanOrEqual(lo - span * 1e-6);
        expect(v).toBeLessThanOrEqual(lo + span + span * 1e-6);
      }
    }));
  });

  it('blues runs from the lightest to the darkest stop', () => {
    expect(blues(0)).toBe('#f7fbff');
    expect(blues(1)).toBe('#08306b');
    expect(blues(NaN)).toBe('#f7fbff');
  });

  it('writeFileAtomic replaces a file and leaves no temp files', async () => {
    const f = path.join(tmp, 'atomic', 'x.txt');
    await writeFileAtomic(f, 'one');
    await writeFileAtomic(f, 'two');
    expect(readFileSync(f, 'utf8')).toBe('two');
    expect(readdirSync(path.dirname(f))).toEqual(['x.txt']);
    const blocker = path.join(tmp, 'blocker');
    writeFileSync(blocker, '');
    await expect(writeFileAtomic(path.join(blocker, 'y.txt'), 'z')).rejects.toThrow(/^cannot write .*y\.txt/);
  });
});

describe('PNG output', () => {
  it('writes .svg and .png whose pixel size is 2x the SVG size, with the DejaVu font', async () => {
    const files = await writeConfusionMatrixPlot(path.join(tmp, 'out', 'confusion'), confusionFromCounts(HF), { title: 'HF PEFT reference' });
    expect(files.svg.endsWith('confusion.svg')).toBe(true);
    expect(files.png).not.toBeNull();
    const svg = readFileSync(files.svg, 'utf8');
    checkXml(svg);
    const { width, height } = pngSize(readFileSync(files.png!));
    const s = svgSize(svg);
    expect([width, height]).toEqual([2 * s.width, 2 * s.height]);
    if (findFontFiles()) expect(files.warning).toBeUndefined();

    const loss = await writeLossCurvePlot(path.join(tmp, 'out', 'loss.png'), { steps: [1, 2, 3], losses: [3, 2, 1.5] });
    expect(loss.svg.endsWith('loss.svg')).toBe(true);
    expect(pngSize(readFileSync(loss.png!)).width).toBe(2 * svgSize(readFileSync(loss.svg, 'utf8')).width);
    expect(readdirSync(path.join(tmp, 'out')).sort()).toEqual(['confusion.png', 'confusion.svg', 'loss.png', 'loss.svg']);
  });

  it('renders text with the given font file and warns (still rendering) when no font is found', async () => {
    const doc = (body: string) => `<svg xmlns="http://www.w3.org/2000/svg" width="300" height="40"><rect width="300" height="40" fill="#fff"/>${body}</svg>`;
    const blank = await svgToPng(doc(''), { scale: 1 });
    const words = await svgToPng(doc('<text x="4" y="28" font-family="DejaVu Sans" font-size="20">Hello, dawngrad</text>'), { scale: 1 });
    if (findFontFiles()) {
      // System fonts are off when a font file is given: any glyph pixels come from that file.
      expect(words.fonts).toEqual(findFontFiles());
      expect(words.warning).toBeUndefined();
      expect(words.png!.length).toBeGreaterThan(blank.png!.length + 200);
    }
    const noFont = await svgToPng(doc('<text x="4" y="28">x</text>'), { scale: 1, fontFiles: [path.join(tmp, 'missing.ttf')] });
    expect(noFont.png).not.toBeNull();
    expect(noFont.fonts).toBeNull();
    expect(noFont.warning).toMatch(/no DejaVu Sans font found/);
  });
});
