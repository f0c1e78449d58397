/** The GPU weight formats live in src/gpu/formats.ts (kernels read them); re-exported for the loader. */
export * from '../gpu/formats.ts';
