/**
 * Errors in plain words for the page. The runtime's typed errors carry a
 * `code` (src/errors.ts) that survives the worker boundary; each code gets a
 * sentence a user can act on, followed by the runtime's own precise message.
 */
export interface PlainError {
  /** Error class name, e.g. 'MissingFileError'. */
  name: string;
  code: string;
  /** What happened, in plain words, and what to do. */
  title: string;
  /** The runtime's message (file, tensor, limit...). */
  detail: string;
}

const TITLES: Record<string, string> = {
  GPU_UNAVAILABLE:
    'WebGPU is not available in this browser, so no model can run here. Use a recent Chrome or Edge on a machine with a supported GPU (in Chromium, WebGPU may need to be enabled).',
  GPU_LIMIT: "This model does not fit in this GPU's limits. Try a smaller weights format (q4 or q8), a shorter context length, or a smaller model.",
  DEVICE_LOST: 'The GPU stopped responding (device lost). Load the model again.',
  MODEL_FORMAT: 'A model file is damaged or not in a supported format.',
  MISSING_FILE:
    'This folder is not a complete model: a file is missing. Choose a folder with config.json, the weight files (safetensors or PyTorch .bin) and the tokenizer.',
  UNSUPPORTED_MODEL: 'This model type is not supported. Supported families: ChatGLM2 and InternLM2 (and llama2.c stories converted to InternLM2).',
  CONFIG: "The model's config.json is invalid or does not match its weights.",
  TOKENIZER: "The model's tokenizer could not be read.",
  CONTEXT_OVERFLOW: 'The conversation is longer than the context length. Clear the chat or raise the context length.',
  INVALID_OPTION: 'A setting has an invalid value.',
  ABORTED: 'Stopped.',
  UNSAFE_PICKLE: 'This PyTorch checkpoint contains code, not just weights, and was refused. Nothing was run.',
  NETWORK: 'The model could not be downloaded. Check the URL and that the server allows cross-origin requests.',
  INTERNAL: 'Something went wrong inside the runtime.',
};

/** Turns anything thrown (typed SieveError, DOMException, TypeError from fetch...) into plain words. */
export function plainError(e: unknown): PlainError {
  const err = e as { name?: string; code?: unknown; message?: string } | undefined;
  const name = typeof err?.name === 'string' ? err.name : 'Error';
  const detail = typeof err?.message === 'string' ? err.message : String(e);
  let code = typeof err?.code === 'string' && err.code in TITLES ? err.code : 'INTERNAL';
  if (code === 'INTERNAL') {
    // Not one of ours: guess the kind from what browsers throw.
    if (name === 'AbortError') code = 'ABORTED';
    else if (name === 'TypeError' && /fetch|network/i.test(detail)) code = 'NETWORK';
    else if (/webgpu|navigator\.gpu|requestAdapter/i.test(detail)) code = 'GPU_UNAVAILABLE';
  }
  return { name, code, title: TITLES[code], detail };
}
