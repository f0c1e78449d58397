/**
 * The runtime's error hierarchy. Every error the runtime throws on purpose is a
 * SieveError with a stable `code`, a message that says what is wrong, where,
 * and what to do, and optional structured `details` (file, tensor, offset,
 * limit...). Errors cross the worker boundary as {name, code, message, details}
 * and are rebuilt into the same class by `reviveError`.
 */
export type SieveErrorCode =
  | 'GPU_UNAVAILABLE'
  | 'GPU_LIMIT'
  | 'DEVICE_LOST'
  | 'MODEL_FORMAT'
  | 'UNSUPPORTED_MODEL'
  | 'CONFIG'
  | 'MISSING_FILE'
  | 'TOKENIZER'
  | 'CONTEXT_OVERFLOW'
  | 'INVALID_OPTION'
  | 'UNSUPPORTED'
  | 'ABORTED'
  | 'UNSAFE_PICKLE'
  | 'NETWORK'
  | 'INTERNAL';

export class SieveError extends Error {
  readonly code: SieveErrorCode;
  readonly details: Record<string, unknown>;
  constructor(code: SieveErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
  }
  toJSON(): { name: string; code: SieveErrorCode; message: string; details: Record<string, unknown> } {
    return { name: this.name, code: this.code, message: this.message, details: this.details };
  }
}

/** No WebGPU adapter at all (no browser support, no Vulkan driver, no SwiftShader). */
export class GpuUnavailableError extends SieveError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('GPU_UNAVAILABLE', message, details);
  }
}

/** A request exceeds what the adapter or a memory budget allows; names the numbers. */
export class GpuLimitError extends SieveError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('GPU_LIMIT', message, details);
  }
}

/** The GPU device was lost (driver reset, destroy(), out of memory). */
export class DeviceLostError extends SieveError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('DEVICE_LOST', message, details);
  }
}

/** A file is malformed: names the file and the fault (offset, tensor...). */
export class ModelFormatError extends SieveError {
  constructor(file: string, fault: string, details: Record<string, unknown> = {}) {
    super('MODEL_FORMAT', `${file}: ${fault}`, { file, ...details });
  }
}

/** A file the checkpoint needs is absent. */
export class MissingFileError extends SieveError {
  constructor(file: string, why: string, details: Record<string, unknown> = {}) {
    super('MISSING_FILE', `${file}: ${why}`, { file, ...details });
  }
}

/** config.json names a model_type this runtime does not support. */
export class UnsupportedModelError extends SieveError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('UNSUPPORTED_MODEL', message, details);
  }
}

/** config.json lacks a field or has one of the wrong type/value, or shapes disagree with it. */
export class ConfigError extends SieveError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('CONFIG', message, details);
  }
}

export class TokenizerError extends SieveError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('TOKENIZER', message, details);
  }
}

/**
 * A chat template failed to render: a runtime error of the template, or one
 * of its limits (loop steps, output length, time, nesting depth, range size)
 * was reached; `details.limit` names the limit. Code TOKENIZER, like the rest
 * of prompt formatting: that request fails, the engine stays usable.
 */
export class TemplateError extends TokenizerError {}

/** A prompt (plus requested tokens) does not fit the context. */
export class ContextOverflowError extends SieveError {
  constructor(promptTokens: number, contextLength: number, details: Record<string, unknown> = {}) {
    super('CONTEXT_OVERFLOW', `prompt of ${promptTokens} tokens exceeds the context length of ${contextLength} tokens`, {
      promptTokens,
      contextLength,
      ...details,
    });
  }
}

/** An option has an invalid value; names the option. */
export class InvalidOptionError extends SieveError {
  constructor(option: string, why: string, details: Record<string, unknown> = {}) {
    super('INVALID_OPTION', `invalid option '${option}': ${why}`, { option, ...details });
  }
}

/**
 * The device lacks what a forced kernel tier needs (the `kernels` option, src/gpu/tier.ts):
 * names the tier and the missing feature or limit (details.tier, details.missing).
 */
export class KernelTierError extends SieveError {
  constructor(tier: string, message: string, details: Record<string, unknown> = {}) {
    super('UNSUPPORTED', message, { tier, ...details });
  }
}

export class AbortedError extends SieveError {
  constructor(message = 'the operation was aborted', details: Record<string, unknown> = {}) {
    super('ABORTED', message, details);
  }
}

/** A pickle asked for something a state_dict never needs (e.g. posix.system). Nothing was run. */
export class UnsafePickleError extends SieveError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('UNSAFE_PICKLE', message, details);
  }
}

export class NetworkError extends SieveError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('NETWORK', message, details);
  }
}

const classes: Record<string, new (...args: never[]) => SieveError> = {};
for (const c of [
  GpuUnavailableError,
  GpuLimitError,
  DeviceLostError,
  ModelFormatError,
  MissingFileError,
  UnsupportedModelError,
  ConfigError,
  TokenizerError,
  TemplateError,
  ContextOverflowError,
  InvalidOptionError,
  KernelTierError,
  AbortedError,
  UnsafePickleError,
  NetworkError,
])
  classes[c.name] = c as unknown as new (...args: never[]) => SieveError;

/** Rebuilds an error serialized with toJSON() (e.g. across a worker boundary), keeping its class. */
export function reviveError(e: { name?: string; code?: string; message?: string; details?: Record<string, unknown> }): Error {
  const cls = e.name ? classes[e.name] : undefined;
  const err: SieveError = Object.create((cls ?? SieveError).prototype);
  Object.assign(err, { name: e.name ?? 'SieveError', code: e.code ?? 'INTERNAL', message: e.message ?? '', details: e.details ?? {} });
  Object.defineProperty(err, 'stack', { value: `${err.name}: ${err.message}`, writable: true, configurable: true });
  return err;
}
