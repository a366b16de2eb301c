// dawngrad predict: classify tweets given as arguments, or one per line on stdin. Each line is classified on its own:
// a tweet too long for --max-length is cut from its end (and counted on stderr), lines go through the model in batches
// of --batch-size, and a line that still cannot be classified (a batch that fails is retried line by line) prints
// `error` and its reason instead of stopping the others; the exit code is then 1.
import { readFileSync } from 'node:fs';
import { parse, num, CliError, type Command } from './args.ts';
import { defaultModelDir } from '../options.ts';
import { heavy, promptFormat, fitLength, loadWithAdapter } from './train.ts';

const USAGE = `usage: dawngrad predict [--model DIR] [--adapter DIR] [--batch-size 64] [--max-length N] [--no-calibration] "tweet text" ...
  (or tweets on stdin, one per line)

  an adapter trained with --calibrate answers by first-token scoring with its calibration.json's prior divided out, as
  its run scored; --no-calibration answers by generation instead

  --batch-size N   tweets per batch through the model (default 64)
  --max-length N   positions per prompt and answer (default: the model's max_position_embeddings); longer tweets are cut`;

export const predict: Command = {
  summary: 'classify tweets given as arguments (or one per line on stdin)',
  async run(argv) {
    const { values: v, positionals } = parse('predict', argv, {
      model: { type: 'string' },
      adapter: { type: 'string' },
      'batch-size': { type: 'string' },
      'max-length': { type: 'string' },
      'no-calibration': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    }, true);
    if (v.help) {
      console.log(USAGE);
      return 0;
    }
    const batchSize = num('predict', 'batch-size', v['batch-size'], 64, { int: true, min: 1 });
    const maxLength = v['max-length'] === undefined ? undefined : num('predict', 'max-length', v['max-length'], 0, { int: true, min: 1 });
    let texts = positionals;
    if (texts.length === 0) {
      if (process.stdin.isTTY) throw new CliError('predict: give tweets as arguments or on stdin');
      texts = readFileSync(0, 'utf8').split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l.trim() !== '');
      if (texts.length === 0) throw new CliError('predict: nothing to classify: stdin held no non-empty line (give tweets as arguments or one per line)');
    }
    const modelDir = v.model ?? defaultModelDir();
    const { fmt, cfg } = await promptFormat(modelDir);
    const fitted = fmt.evalPrompts(texts, fitLength('predict', maxLength, cfg.maxPositionEmbeddings, fmt));
    const cut = fitted.filter((p) => p.cut).length;
    if (cut > 0) console.error(`predict: cut ${cut} tweet(s) to fit ${maxLength ?? cfg.maxPositionEmbeddings} positions (from the end of the tweet)`);
    const { init, dispose, rt, generate, largestBatchBuffer, GENERATED_TOKENS, LABEL_NAMES, readCalibration, calibratedLabels } = await heavy();
    const cal = v.adapter && !v['no-calibration'] ? readCalibration(v.adapter) : null; // score the way the adapter's run did
    if (cal) console.error(`predict: calibrated first-token scoring (the ${cal.method} prior in ${v.adapter}/calibration.json; --no-calibration: by generation)`);
    await init();
    try {
      const model = await loadWithAdapter(modelDir, v.adapter);
      const limit = rt().ctx.limits.maxStorageBufferBindingSize;
      const fits = (rows: number[]) => largestBatchBuffer(cfg, rows.length, Math.max(...rows.map((i) => fitted[i]!.ids.length)) + GENERATED_TOKENS).bytes <= limit;
      const labels = new Array<string>(texts.length);
      const failed: string[] = [];
      // rows: indices into texts; a batch too large for the device, or one that fails, is split until single lines remain
      const classify = async (rows: number[]): Promise<void> => {
        if (rows.length > 1 && !fits(rows)) {
          const half = Math.ceil(rows.length / 2);
          return classify(rows.slice(0, half)).then(() => classify(rows.slice(half)));
        }
        try {
          if (!fits(rows)) throw new Error(`its ${fitted[rows[0]!]!.ids.length}-token prompt is too large for this device: lower --max-length`);
          const found = cal
            ? await calibratedLabels(model, fmt, rows.map((i) => fitted[i]!.ids), cal.prior)
            : (await generate(model, rows.map((i) => fitted[i]!.ids), { maxNewTokens: GENERATED_TOKENS, stopTokens: [fmt.endToken] })).ids.map((ids) => fmt.parseAnswer(ids));
          rows.forEach((i, r) => (labels[i] = found[r]! >= 0 ? LABEL_NAMES[found[r]!]! : 'invalid'));
        } catch (e) {
          if (rows.length > 1) {
            for (const i of rows) await classify([i]);
            return;
          }
          labels[rows[0]!] = 'error';
          failed.push(`predict: line ${rows[0]! + 1}: ${(e as Error).message.split('\n')[0]}`);
        }
      };
      // similar lengths together: less padding, as evaluate() batches
      const order = [...texts.keys()].sort((a, b) => fitted[a]!.ids.length - fitted[b]!.ids.length);
      for (let s = 0; s < order.length; s += batchSize) await classify(order.slice(s, s + batchSize));
      texts.forEach((t, i) => console.log(`${labels[i]}\t${t}`));
      for (const f of failed) console.error(f);
      return failed.length > 0 ? 1 : 0;
    } finally {
      dispose();
    }
  },
};
