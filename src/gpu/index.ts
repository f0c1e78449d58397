export * from './device.ts';
export * from './buffers.ts';
export * from './pipelines.ts';
export * from './timing.ts';
