/** The generation API (see src/index.ts for the package root). */
export { loadModel, adaptTokenizer } from './load.ts';
export { LocalEngine, type TokenizerAdapter, type EngineParts } from './engine.ts';
export { makeChatCompletions, usageOf } from './openai.ts';
export { resolveGenerate, validateChatRequest, validateLoadOptions, DEFAULT_MAX_TOKENS } from './options.ts';
export { StopMatcher } from './stop.ts';
export { SerialQueue } from './queue.ts';
export { commonPrefix } from './generate.ts';
export type * from './types.ts';
