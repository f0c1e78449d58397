// WGSL sources are imported as strings: Vite handles `?raw`; under Node the
// loader hook in src/cli/raw-loader.mjs does the same.
declare module '*.wgsl?raw' {
  const source: string;
  export default source;
}
