// @dawngrad/model: Hugging Face file formats (safetensors, config, tokenizer, chat template, hub cache) and the model.

// Hugging Face files
export * from './safetensors.ts';
export * from './safetensors-write.ts';
export * from './checkpoint.ts';
export * from './files.ts';
export * from './sources.ts';
export * from './config.ts';
export * from './tokenizer.ts';
export * from './chat.ts';
export * from './hub.ts';
export { HttpError, type FileMeta } from './download.ts';

// The model on the GPU
export * from './modules.ts';
export * from './mistral.ts';
export * from './prefix.ts';
export * from './load.ts';
export * from './loss.ts';
export * from './kv-cache.ts';
export * from './generate.ts';
export * from './shapes.ts';
