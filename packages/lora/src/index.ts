// @dawngrad/lora: LoRA adapters compatible with Hugging Face PEFT — config, injection into the model's linear layers,
// adapter files (adapter_config.json + adapter_model.safetensors), merge/unmerge, and merged-model export.
export * from './config.ts';
export * from './peft-config.ts';
export * from './init.ts';
export * from './lora.ts';
export * from './merge.ts';
export * from './adapter-files.ts';
export * from './export.ts';
