// The three TweetEval sentiment labels, in label-id order. Apart from data.ts (which reads the files, Node only) so that
// prompts and metrics also bundle for a browser page (examples/browser).
export const LABEL_NAMES = ['negative', 'neutral', 'positive'] as const;
export const NUM_CLASSES = LABEL_NAMES.length;
export type LabelName = (typeof LABEL_NAMES)[number];
