// A small RFC 4180 CSV parser: enough for labelled-text files, where tweets contain commas, quotes and line breaks.
//
// Rules (RFC 4180, plus what real exports do):
// - records end at CRLF or LF (a lone CR inside an unquoted field is kept); a final line break is optional;
// - a field is quoted if its first character is `"`; inside quotes `""` is one `"` and line breaks are data;
// - after a closing quote only the delimiter or a line break may follow; a `"` inside an unquoted field is an error;
// - a UTF-8 byte-order mark at the start is dropped; blank lines are skipped.

export interface CsvOptions {
  /** Field separator, one character; default ','. */
  delimiter?: string;
  /** Named in error messages, e.g. the file path. */
  source?: string;
}

/** Parses CSV text into records of string fields. Throws one-line errors with the line number. */
export function parseCsv(text: string, opts: CsvOptions = {}): string[][] {
  const delim = opts.delimiter ?? ',';
  const where = opts.source ?? 'csv';
  if (delim.length !== 1 || delim === '"' || delim === '\n' || delim === '\r') {
    throw new Error(`${where}: invalid CSV delimiter ${JSON.stringify(delim)}`);
  }
  const records: string[][] = [];
  let record: string[] = [];
  let field = '';
  let line = 1; // for error messages
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const n = text.length;
  // State: are we at the start of a field (so a quote opens a quoted field)?
  let fieldStart = true;
  let sawAnyField = false; // distinguishes a blank line from a record with one empty field

  const endField = () => {
    record.push(field);
    field = '';
    fieldStart = true;
  };
  const endRecord = () => {
    if (sawAnyField || record.length > 0 || field.length > 0) {
      endField();
      records.push(record);
    }
    record = [];
    field = '';
    fieldStart = true;
    sawAnyField = false;
  };

  while (i < n) {
    const c = text[i];
    if (fieldStart && c === '"') {
      // Quoted field: read to the matching closing quote.
      const openLine = line;
      i++;
      let closed = false;
      while (i < n) {
        const q = text[i];
        if (q === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          closed = true;
          i++;
          break;
        }
        if (q === '\n') line++;
        field += q;
        i++;
      }
      if (!closed) throw new Error(`${where}: unterminated quoted field starting on line ${openLine}`);
      sawAnyField = true;
      fieldStart = false;
      // Only a delimiter, a line break or the end may follow a closing quote.
      const next = text[i];
      if (i < n && next !== delim && next !== '\n' && !(next === '\r' && text[i + 1] === '\n')) {
        throw new Error(`${where}: unexpected character ${JSON.stringify(next)} after a closing quote on line ${line}`);
      }
      continue;
    }
    if (c === delim) {
      sawAnyField = true;
      endField();
      i++;
      continue;
    }
    if (c === '\n' || (c === '\r' && text[i + 1] === '\n')) {
      endRecord();
      i += c === '\r' ? 2 : 1;
      line++;
      continue;
    }
    if (c === '"') throw new Error(`${where}: stray quote inside an unquoted field on line ${line}`);
    field += c;
    fieldStart = false;
    sawAnyField = true;
    i++;
  }
  endRecord();
  return records;
}

/**
 * Parses CSV with a header row into objects keyed by column name.
 * Every record must have as many fields as the header (a ragged file is usually a quoting mistake).
 */
export function parseCsvObjects(text: string, opts: CsvOptions = {}): { columns: string[]; rows: Record<string, string>[] } {
  const where = opts.source ?? 'csv';
  const records = parseCsv(text, opts);
  if (records.length === 0) throw new Error(`${where}: empty CSV file (no header row)`);
  const columns = records[0];
  const rows: Record<string, string>[] = [];
  for (let r = 1; r < records.length; r++) {
    const rec = records[r];
    if (rec.length !== columns.length) {
      throw new Error(`${where}: record ${r} has ${rec.length} fields but the header has ${columns.length}`);
    }
    const obj: Record<string, string> = {};
    for (let c = 0; c < columns.length; c++) obj[columns[c]] = rec[c];
    rows.push(obj);
  }
  return { columns, rows };
}
